"""`fabrica add resource KIND` (the starter file of a new kind) and `fabrica add version KIND
VERSION` (one more API version of a kind)."""

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


@add.command()
@click.argument("kind")
@click.argument("version")
@click.option("--deprecated", is_flag=True,
              help="Serve it with Warning and Deprecation headers (an old version).")
def version(kind: str, version: str, deprecated: bool) -> None:
    """Write PKG/resources/KIND_VERSION.py: KIND served in API VERSION too (v1, v2beta1,
    v3alpha2), with its Spec copied from the storage version's and conversions to edit."""
    root = Path.cwd()
    with user_errors():
        path = codegen.add_version(root, kind, version, deprecated)
    out = console()
    out.print(f"[green]created[/] {escape(path.relative_to(root).as_posix())}")
    out.print(f"Next: edit {escape(path.name)} (its Spec and the two spec conversions); a "
              f"kind that still stores {escape(version)} moves on first (version= in its class "
              "keywords). Then run [bold]fabrica generate[/].")
