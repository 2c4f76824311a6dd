"""Durations (``7d``, ``90s``) and sizes (``1GiB``, ``500MB``) on the command line.

`duration` and `byte_size` parse a value (ValueError says how to write one);
`as_duration` and `as_byte_size` are the same as click option callbacks.
"""

from __future__ import annotations

import re

import click

__all__ = ["as_byte_size", "as_duration", "as_positive_byte_size", "byte_size", "duration"]

_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h|d)?\s*$")
_SECONDS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0, None: 1.0}
_SIZE = re.compile(r"^\s*(\d+)\s*([kmgt]i?b?|b)?\s*$", re.IGNORECASE)
_POWERS = {"k": 1, "m": 2, "g": 3, "t": 4}


def duration(text: str) -> float:
    """Seconds in `text`: ``90``, ``90s``, ``250ms``, ``15m``, ``24h``, ``7d``."""
    match = _DURATION.match(text)
    if match is None:
        raise ValueError(f"{text!r} is not a duration: use seconds or a number with "
                         "ms, s, m, h or d (e.g. 90s, 24h, 7d)")
    return float(match[1]) * _SECONDS[match[2]]


def byte_size(text: str) -> int:
    """Bytes in `text`: ``1024``, ``1KB`` (1000), ``1KiB`` (1024), ``512MiB``, ``1GiB``."""
    match = _SIZE.match(text)
    if match is None:
        raise ValueError(f"{text!r} is not a size: use bytes or a number with KB, MB, GB "
                         "(powers of 1000) or KiB, MiB, GiB (powers of 1024)")
    unit = (match[2] or "b").lower()
    if unit == "b":
        return int(match[1])
    base = 1024 if "i" in unit else 1000
    return int(match[1]) * int(base ** _POWERS[unit[0]])


def as_positive_byte_size(ctx: click.Context, param: click.Parameter, value: str) -> int:
    size = as_byte_size(ctx, param, value)
    if size < 1:
        raise click.BadParameter("must be at least one byte", ctx, param)
    return size


def as_duration(ctx: click.Context, param: click.Parameter, value: str) -> float:
    try:
        return duration(value)
    except ValueError as exc:
        raise click.BadParameter(str(exc), ctx, param) from None


def as_byte_size(ctx: click.Context, param: click.Parameter, value: str) -> int:
    try:
        return byte_size(value)
    except ValueError as exc:
        raise click.BadParameter(str(exc), ctx, param) from None
