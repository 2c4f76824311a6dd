"""Event-type patterns: ``*`` matches exactly one dot-separated segment, ``**`` any rest.

``io.fabrica.*.created`` matches ``io.fabrica.rack.created`` but not
``io.fabrica.rack.created.v2``; ``io.fabrica.**`` matches ``io.fabrica`` itself and
everything below it; ``**`` alone matches every type. ``**`` may only be the last segment
and wildcards must be whole segments, so every pattern maps onto NATS subjects: ``*`` is
NATS ``*``, and ``P.**`` is the pair of subjects ``P`` and ``P.>`` (``>`` needs one token).
The checks are NATS's subject rules, whichever bus is used, so a pattern one bus takes every
bus takes: no ``>`` (NATS's own wildcard: write ``**``), no whitespace or other unprintable
character (a NUL...), no empty segment.

Patterns are compiled once (an LRU cache) to a predicate: exact patterns compare strings,
the rest use one anchored regular expression.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from functools import lru_cache

__all__ = ["TypePattern", "compile_pattern", "type_matches"]


@dataclass(frozen=True, slots=True)
class TypePattern:
    """A validated, compiled event-type pattern; use `compile_pattern` to get one."""

    pattern: str
    _regex: re.Pattern[str] | None = field(repr=False, compare=False)

    def matches(self, event_type: str) -> bool:
        if self._regex is None:
            return event_type == self.pattern
        return self._regex.fullmatch(event_type) is not None


@lru_cache(maxsize=1024)
def compile_pattern(pattern: str) -> TypePattern:
    """Validate and compile `pattern`; ValueError says what is wrong with it."""
    segments = _segments(pattern)
    if "*" not in pattern:
        return TypePattern(pattern, None)
    parts = [r"[^.]+" if s == "*" else re.escape(s) for s in segments if s != "**"]
    regex = r"\.".join(parts)
    if segments[-1] == "**":
        regex = rf"{regex}(?:\..+)?" if parts else r".*"
    return TypePattern(pattern, re.compile(regex, re.DOTALL))


def type_matches(pattern: str, event_type: str) -> bool:
    """Whether `event_type` matches `pattern` (compiled and cached on first use)."""
    return compile_pattern(pattern).matches(event_type)


def _segments(pattern: str) -> list[str]:
    if not isinstance(pattern, str) or not pattern:
        raise ValueError("event type pattern must be a non-empty string")
    for char in pattern:
        if char.isspace() or not char.isprintable():
            raise ValueError(f"invalid event type pattern {pattern!r}: {char!r} is not allowed "
                             "(no whitespace or control characters)")
    if ">" in pattern:
        raise ValueError(f"invalid event type pattern {pattern!r}: '>' is not allowed "
                         "(use '**' to match any rest)")
    segments = pattern.split(".")
    for i, segment in enumerate(segments):
        if not segment:
            raise ValueError(f"invalid event type pattern {pattern!r}: empty segment")
        if "*" in segment and segment not in ("*", "**"):
            raise ValueError(
                f"invalid event type pattern {pattern!r}: "
                f"wildcards must be whole segments ('*' or '**'), not {segment!r}"
            )
        if segment == "**" and i != len(segments) - 1:
            raise ValueError(
                f"invalid event type pattern {pattern!r}: '**' is only allowed as the last segment"
            )
    return segments
