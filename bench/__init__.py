"""Benchmarks of the function app (dev tooling, never deployed): ``python -m bench [--quick]``."""
