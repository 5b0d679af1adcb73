"""Contract tests against third-party OpenAPI specs served by a Stoplight Prism mock."""
