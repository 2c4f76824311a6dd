"""Terminal output shared by the commands: rich summaries, notices, and user errors."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import click
from rich.console import Console
from rich.markup import escape

from ..codegen import CONFIG_FILE, CodegenError, GenerateResult

__all__ = ["console", "report_files", "report_pending", "user_errors"]

_STYLES = {"created": "green", "updated": "cyan", "unchanged": "dim"}


def console(stderr: bool = False) -> Console:
    """A console on the current stdout/stderr (made per call, so test runners capture it)."""
    return Console(stderr=stderr, soft_wrap=True, highlight=False)


@contextlib.contextmanager
def user_errors() -> Iterator[None]:
    """Turn a `CodegenError` into click's one-message error: stderr, exit 1, no traceback."""
    try:
        yield
    except CodegenError as exc:
        raise click.ClickException(str(exc)) from None


def report_files(result: GenerateResult) -> None:
    out = console()
    written = [f for f in result.files if f.action != "unchanged"]
    for change in written:
        style = _STYLES[change.action]
        out.print(f"  [{style}]{change.action:<9}[/] {escape(change.path)}")
    unchanged = len(result.files) - len(written)
    if unchanged:
        out.print(f"  [dim]unchanged {unchanged} generated file{'s' * (unchanged != 1)}[/]")


def report_pending(result: GenerateResult) -> None:
    """Say, for each enabled feature this release lacks, that it is stored but not running."""
    err = console(stderr=True)
    for feature in result.pending:
        err.print(
            f"[yellow]{feature}: recorded in {CONFIG_FILE}, not available yet in this release "
            "(the server will say so at start)[/]"
        )
