"""The function app's own package: every concern the handlers share, one module each (see README)."""
