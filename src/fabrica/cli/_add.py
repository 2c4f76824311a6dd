"""`fabrica add resource KIND`: the starter file of a new kind."""

from __future__ import annotations

from pathlib import Path

import click
from rich.markup import escape

from .. import codegen
from ._output import console, user_errors

__all__ = ["add"]


@click.group()
def add() -> None:
    """Add something to the project in the current directory."""


@add.command()
@click.argument("kind")
@click.option("--prefix", help="UID prefix (default: the lower-cased kind, cut to 6 letters).")
@click.option("--plural", help="URL segment (default: the English plural of the lower-cased kind).")
@click.option("--with-versioning", is_flag=True, help="Keep a version history of each spec.")
def resource(kind: str, prefix: str | None, plural: str | None, with_versioning: bool) -> None:
    """Write PKG/resources/KIND.py with a starter Spec and Status for KIND (e.g. Device)."""
    root = Path.cwd()
    with user_errors():
        path = codegen.add_resource(root, kind, prefix, plural, with_versioning)
    out = console()
    out.print(f"[green]created[/] {escape(path.relative_to(root).as_posix())}")
    out.print(f"Next: edit {kind}Spec and {kind}Status in it, then run [bold]fabrica generate[/].")
