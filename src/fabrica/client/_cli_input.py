"""What the command line reads: request bodies from ``--spec``/``-f`` and patch options.

Input mistakes are the user's to fix, so they surface as click usage errors (exit 2, with
the option named) before any request is sent.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Sequence
from typing import Any

import click
import yaml

__all__ = ["load_body", "load_json", "shorthand_patch"]


def load_json(text: str, option: str) -> Any:
    try:
        return json.loads(text)
    except ValueError as exc:
        raise click.BadParameter(f"not valid JSON: {exc}", param_hint=option) from None


def load_body(spec: str | None, file: str | None) -> dict[str, Any]:
    """The JSON object given by ``--spec JSON`` or ``-f FILE`` (JSON or YAML; ``-`` is stdin)."""
    if (spec is None) == (file is None):
        raise click.UsageError("give the body with exactly one of --spec JSON or -f FILE")
    if spec is not None:
        body, where = load_json(spec, "--spec"), "--spec"
    else:
        assert file is not None
        body, where = _load_file(file), "-f"
    if not isinstance(body, dict):
        raise click.BadParameter("must be a JSON object", param_hint=where)
    return body


def shorthand_patch(sets: Sequence[str], unsets: Sequence[str]) -> dict[str, Any]:
    """``--set a.b=V`` and ``--unset c`` → ``{"a.b": V, "c": null}``.

    V is taken as JSON when it parses (``port=8443`` is a number, ``ready=true`` a boolean,
    ``tags={"a":"b"}`` an object) and as a plain string otherwise (``type=server``).
    """
    patch: dict[str, Any] = {}
    for item in sets:
        path, sep, value = item.partition("=")
        if not sep or not path:
            raise click.BadParameter(f"{item!r} is not PATH=VALUE", param_hint="--set")
        patch[path] = _value(value)
    for path in unsets:
        patch[path] = None
    return patch


def _value(text: str) -> Any:
    try:
        return json.loads(text)
    except ValueError:
        return text


def _load_file(path: str) -> Any:
    try:
        with click.open_file(path, encoding="utf-8") as stream:
            text = stream.read()
    except OSError as exc:
        raise click.BadParameter(str(exc), param_hint="-f") from None
    try:
        data = yaml.safe_load(text)  # YAML is a superset of JSON: one parser reads both
    except yaml.YAMLError as exc:
        raise click.BadParameter(f"{path} is neither JSON nor YAML: {exc}",
                                 param_hint="-f") from None
    # YAML turns unquoted timestamps into datetimes; the wire wants RFC 3339 strings.
    try:
        return json.loads(json.dumps(data, default=_iso))
    except TypeError as exc:
        raise click.BadParameter(f"{path}: {exc}", param_hint="-f") from None


def _iso(value: Any) -> str:
    if isinstance(value, dt.datetime | dt.date):
        return value.isoformat()
    raise TypeError(f"{type(value).__name__} is not JSON")
