"""The `fabrica` command line: `init`, `add resource`, `generate` and `version`."""

from ._main import main

__all__ = ["main"]
