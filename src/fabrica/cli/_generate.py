"""`fabrica generate`: bring the current project's generated files up to date."""

from __future__ import annotations

from pathlib import Path

import click

from .. import codegen
from ._output import console, report_files, report_pending, user_errors

__all__ = ["generate"]


@click.command()
def generate() -> None:
    """(Re)write every *_generated.py file from the resource files and .fabrica.yaml.

    Creates the user-owned files (pyproject.toml, README.md, __main__.py stubs) only when
    they are missing, and writes a file only when its content changes.
    """
    with user_errors():
        result = codegen.generate(Path.cwd())
    kinds = ", ".join(result.kinds) or "none yet (fabrica add resource KIND)"
    console().print(f"fabrica generate: kinds: {kinds}")
    if result.versions:
        console().print(f"also served: {', '.join(result.versions)}")
    report_files(result)
    report_pending(result)
