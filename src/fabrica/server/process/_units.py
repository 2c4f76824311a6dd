"""Durations (``7d``, ``90s``) and sizes (``1GiB``, ``500MB``) on the command line.

`duration` and `byte_size` (in `fabrica._units`, which the resource model shares) parse a
value (ValueError says how to write one); `as_duration` and `as_byte_size` are the same as
click option callbacks.
"""

from __future__ import annotations

import click

from ..._units import byte_size, duration

__all__ = ["as_byte_size", "as_duration", "as_positive_byte_size", "byte_size", "duration"]


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
