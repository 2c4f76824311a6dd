"""How the command line shows results: ``json`` and ``yaml`` for machines, ``table`` for people.

``json`` is the server's JSON, only indented, so scripts see exactly what the API returns.
The table follows ``kubectl get``: NAME, UID, a few short spec fields, the status fields a
person scans for (phase, ready, health), and AGE. Columns come from the data, not from the
classes, so one renderer serves every kind.
"""

from __future__ import annotations

import datetime as dt
import json
import re
import sys
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import click
import yaml
from rich.console import Console
from rich.table import Table
from rich.text import Text

__all__ = [
    "FORMATS",
    "age",
    "column_header",
    "columns_of",
    "echo_data",
    "echo_table",
    "key_value_table",
    "resource_table",
    "rows_table",
]

FORMATS = ("table", "json", "yaml")
_SPEC_COLUMNS = 3
_STATUS_PREFERRED = ("phase", "ready", "health", "state")
_Scalar = (str, int, float, bool, type(None))


def echo_data(data: Any, fmt: str) -> None:
    """Print `data` as indented JSON or as YAML."""
    if fmt == "yaml":
        click.echo(yaml.safe_dump(data, sort_keys=False, allow_unicode=True), nl=False)
    else:
        click.echo(json.dumps(data, indent=2, ensure_ascii=False))


def echo_table(table: Table) -> None:
    # Not a terminal (a pipe, a test): do not squeeze or wrap the columns to 80 characters.
    width = None if sys.stdout.isatty() else 250
    Console(file=sys.stdout, width=width).print(table)


def resource_table(items: Sequence[Mapping[str, Any]], now: dt.datetime | None = None) -> Table:
    specs = [item.get("spec") or {} for item in items]
    statuses = [item.get("status") or {} for item in items]
    spec_keys, status_keys = columns_of(items)
    table = _table(["NAME", "UID", *map(_header, spec_keys), *map(_header, status_keys), "AGE"])
    for item, spec, status in zip(items, specs, statuses, strict=True):
        meta = item.get("metadata") or {}
        table.add_row(
            _cell(meta.get("name")), _cell(meta.get("uid")),
            *(_cell(spec.get(k)) for k in spec_keys),
            *(_cell(status.get(k)) for k in status_keys),
            _cell(age(meta.get("createdAt"), now)),
        )
    return table


def columns_of(items: Sequence[Mapping[str, Any]]) -> tuple[list[str], list[str]]:
    """The spec and status fields a table of `items` shows, between UID and AGE."""
    specs = [item.get("spec") or {} for item in items]
    statuses = [item.get("status") or {} for item in items]
    return _scalar_keys(specs)[:_SPEC_COLUMNS], _status_columns(_scalar_keys(statuses))


def column_header(key: str) -> str:
    """``ipAddress`` → ``IP ADDRESS``."""
    return _header(key)


def key_value_table(mapping: Mapping[str, Any]) -> Table:
    """One row per field: a single object, e.g. a resource's status."""
    table = _table(["FIELD", "VALUE"])
    for key, value in mapping.items():
        table.add_row(_cell(key), _cell(value))
    return table


def rows_table(rows: Sequence[Mapping[str, Any]]) -> Table:
    """A table of arbitrary objects, with a column for each scalar field."""
    keys = _scalar_keys(rows)
    table = _table([_header(k) for k in keys])
    for row in rows:
        table.add_row(*(_cell(row.get(k)) for k in keys))
    return table


def age(created: Any, now: dt.datetime | None = None) -> str:
    """``2024-05-01T10:00:00Z`` → ``3d``, as kubectl shows it; blank when unknown."""
    try:
        then = dt.datetime.fromisoformat(str(created))
    except ValueError:
        return ""
    if then.tzinfo is None:
        then = then.replace(tzinfo=dt.UTC)
    seconds = int(((now or dt.datetime.now(dt.UTC)) - then).total_seconds())
    for unit, size, limit in (("s", 1, 120), ("m", 60, 120 * 60), ("h", 3600, 48 * 3600)):
        if seconds < limit:
            return f"{max(seconds, 0) // size}{unit}"
    return f"{seconds // 86400}d"


def _table(headers: Iterable[str]) -> Table:
    table = Table(box=None, header_style="bold", pad_edge=False, show_edge=False)
    for header in headers:
        table.add_column(header, overflow="fold")
    return table


def _scalar_keys(objects: Sequence[Mapping[str, Any]]) -> list[str]:
    """Keys, in first-seen order, whose values are scalars in every object."""
    keys: dict[str, bool] = {}
    for obj in objects:
        for key, value in obj.items():
            keys[key] = keys.get(key, True) and isinstance(value, _Scalar)
    return [key for key, scalar in keys.items() if scalar]


def _status_columns(keys: list[str]) -> list[str]:
    preferred = [key for key in _STATUS_PREFERRED if key in keys]
    return preferred[:2] or keys[:1]


def _header(key: str) -> str:
    """``ipAddress`` → ``IP ADDRESS``."""
    return re.sub(r"(?<=[a-z0-9])(?=[A-Z])|_", " ", key).upper()


def _cell(value: Any) -> Text:
    if value is None:
        return Text("")
    if isinstance(value, str):
        return Text(value)
    return Text(json.dumps(value, ensure_ascii=False))  # true/false, numbers, nested JSON
