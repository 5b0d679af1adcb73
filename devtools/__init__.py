"""Developer tooling for the function app (never deployed)."""
