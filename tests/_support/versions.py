"""The API-versions example (examples/api-versions: Device stored in v2, v1 served and
deprecated), imported as a package so device_v1.py's relative import works."""

from __future__ import annotations

import importlib
import sys
import types
from pathlib import Path
from typing import Any

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "api-versions"


def load() -> tuple[Any, Any]:
    """The example's modules (device, device_v1), imported once per test session."""
    name = "example_api_versions"
    if name not in sys.modules:
        package = types.ModuleType(name)
        package.__path__ = [str(EXAMPLE)]
        sys.modules[name] = package
    return (importlib.import_module(f"{name}.device"),
            importlib.import_module(f"{name}.device_v1"))
