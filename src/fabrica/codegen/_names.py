"""Project and package names: what `fabrica init` accepts and how it derives one from another."""

from __future__ import annotations

import importlib.util
import keyword
import re
import sys
from pathlib import Path

from ._errors import CodegenError

__all__ = [
    "check_module_name",
    "check_not_installed",
    "check_project_name",
    "derive_module_name",
]

# PEP 508 distribution names: what pyproject.toml's `name` accepts.
_PROJECT = re.compile(r"^[A-Za-z0-9](?:[A-Za-z0-9._-]*[A-Za-z0-9])?$")
_RESERVED = {"fabrica", "pyfabrica"}


def derive_module_name(text: str) -> str:
    """`rack-inventory` → `rack_inventory`; Go-style `github.com/you/rack-svc` → `rack_svc`."""
    last = text.strip().rstrip("/").rsplit("/", 1)[-1]
    return last.replace("-", "_").replace(".", "_")


def check_project_name(name: str) -> None:
    if not _PROJECT.match(name):
        raise CodegenError(
            f"project name {name!r} is not a valid Python distribution name",
            "use letters, digits, '-', '_' or '.', starting and ending with a letter or digit",
        )


def check_module_name(module: str) -> None:
    """Refuse a package name Python cannot import, or one that would hide another package."""
    hint = "choose another with --module NAME (letters, digits and '_')"
    if not module.isidentifier() or not module.isascii():
        raise CodegenError(f"package name {module!r} is not a valid Python identifier", hint)
    if keyword.iskeyword(module):
        raise CodegenError(f"package name {module!r} is a Python keyword", hint)
    if module in _RESERVED or module in sys.stdlib_module_names:
        raise CodegenError(f"package name {module!r} would hide the {module!r} module", hint)


def check_not_installed(module: str, root: Path) -> None:
    """Refuse a package name that already imports from somewhere else than `root`."""
    try:
        spec = importlib.util.find_spec(module)
    except (ImportError, ValueError):
        return
    origin = spec.origin if spec else None
    if origin and not Path(origin).resolve().is_relative_to(root.resolve()):
        raise CodegenError(
            f"package name {module!r} is already taken by {origin}",
            "choose another with --module NAME",
        )
