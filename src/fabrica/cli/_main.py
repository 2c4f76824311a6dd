"""The `fabrica` command group; each command lives in its own module."""

from __future__ import annotations

import click

from .._version import __version__
from ._add import add
from ._generate import generate
from ._init import init

__all__ = ["main"]


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, "--version", prog_name="fabrica", message="%(prog)s %(version)s")
def main() -> None:
    """Fabrica for Python: Kubernetes-style resource REST services from resource definitions.

    \b
    fabrica init rack-inventory        a new project
    fabrica add resource Device        a new kind, in rack_inventory/resources/device.py
    fabrica generate                   (re)write the *_generated.py files
    python -m rack_inventory.server serve
    """


@main.command()
def version() -> None:
    """Print the fabrica version."""
    click.echo(f"fabrica {__version__}")


main.add_command(init)
main.add_command(add)
main.add_command(generate)
