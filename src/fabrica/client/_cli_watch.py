"""``KIND list --watch`` (``-w``): the kind's resources, then each change to them, as rows.

The same list-then-watch loop as the informer (`follow`), over the raw JSON so ``-o json``
prints exactly what the server sent: one ``{"type", "object"}`` event per line. In a table
every change is a row led by its event type (ADDED for what the list found, then ADDED,
MODIFIED, DELETED as they happen), under one header, like ``kubectl get -w``.

It runs until Ctrl-C (exit 0, quietly) or until the server ends the watch (with
``--watch-timeout``, or when it shuts down gracefully); a broken connection or a server error
reconnects with backoff and resumes where it stopped, and a 410 lists again and prints the
difference, so the rows always add up to what the server holds. Errors no retry can fix
(401, 403, a bad selector) end it with the server's message.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

import click

from ._cache import Cache, CacheChange
from ._errors import ConnectionFailed, FabricaError, ServerError
from ._informer import follow
from ._output import age, column_header, columns_of, echo_data
from ._raw import JSON, RawClient

__all__ = ["watch_rows"]


def watch_rows(
    client: RawClient,
    kind: Any,
    selector: str | None,
    fmt: str,
    timeout_seconds: int | None = None,
    field_selector: str | None = None,
) -> None:
    """Print `kind`'s resources and then their changes in `fmt` until stopped (see above)."""
    rows = _Rows()
    changes = follow(client, kind, Cache[JSON](lambda raw: raw), label_selector=selector,
                     timeout_seconds=timeout_seconds, retry=_transient, until_end=True,
                     field_selector=field_selector)
    try:
        for batch in changes:
            if fmt == "table":
                rows.echo(batch)
            else:
                for change in batch:
                    _echo_event(change, fmt)
    except KeyboardInterrupt:
        return
    finally:
        changes.close()


def _transient(error: FabricaError) -> bool:
    return isinstance(error, ConnectionFailed | ServerError)


def _echo_event(change: CacheChange[JSON], fmt: str) -> None:
    event = {"type": change.type, "object": change.raw}
    if fmt == "json":
        click.echo(json.dumps(event, separators=(",", ":"), ensure_ascii=False))
    else:
        click.echo("---")
        echo_data(event, "yaml")


class _Rows:
    """A table printed a row at a time: its columns and widths come from the first batch
    (the list), as ``kubectl get -w`` does, so rows line up without reprinting."""

    def __init__(self) -> None:
        self.spec: list[str] = []
        self.status: list[str] = []
        self.widths: list[int] = []

    def echo(self, batch: Sequence[CacheChange[JSON]]) -> None:
        if not batch:
            return
        if not self.widths:
            self.spec, self.status = columns_of([change.raw for change in batch])
            rows = [self._cells(change) for change in batch]
            header = ["EVENT", "NAME", "UID", *map(column_header, self.spec),
                      *map(column_header, self.status), "AGE"]
            self.widths = [max(map(len, column)) for column in zip(header, *rows, strict=True)]
            self.widths[0] = len("MODIFIED")  # every event type fits
            self._line(header)
        for change in batch:
            self._line(self._cells(change))

    def _cells(self, change: CacheChange[JSON]) -> list[str]:
        raw = change.raw
        meta, spec, status = (raw.get(k) or {} for k in ("metadata", "spec", "status"))
        return [change.type, _cell(meta.get("name")), _cell(meta.get("uid")),
                *(_cell(spec.get(k)) for k in self.spec),
                *(_cell(status.get(k)) for k in self.status),
                age(meta.get("createdAt"))]

    def _line(self, cells: Sequence[str]) -> None:
        padded = [cell.ljust(width) for cell, width in zip(cells, self.widths, strict=False)]
        click.echo("  ".join(padded).rstrip())


def _cell(value: Any) -> str:
    if value is None:
        return ""
    return value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)
