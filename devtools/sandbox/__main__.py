"""Entry point for `python -m devtools.sandbox`."""

from .cli import main

if __name__ == "__main__":
    raise SystemExit(main())
