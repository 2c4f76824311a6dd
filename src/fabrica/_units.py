"""Durations (``7d``, ``90s``) and sizes (``1GiB``, ``500MB``) as people write them.

Shared by the resource model (``max_body_size="64KiB"``) and the command line; neither
depends on the other, so the parsing lives here, below both.
"""

from __future__ import annotations

import re

__all__ = ["byte_size", "duration"]

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
