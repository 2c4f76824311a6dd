"""Event types and patterns as NATS subjects.

An event travels on the subject equal to its ``type``. Patterns map onto subjects: ``*`` is
NATS ``*``; ``P.**`` is the pair ``P`` and ``P.>`` (NATS ``>`` needs at least one token,
fabrica ``**`` matches none too); ``**`` alone is ``>``. Event types must therefore be
valid NATS subjects: non-empty dot-separated tokens without whitespace, ``*`` or ``>``.
"""

from __future__ import annotations

from .._patterns import compile_pattern

__all__ = ["subject_of", "subjects_of"]


def _tokens(text: str, what: str) -> list[str]:
    tokens = text.split(".")
    if "" in tokens:
        raise ValueError(f"{what} {text!r} cannot be a NATS subject: it has an empty segment")
    for char in text:
        if char.isspace() or not char.isprintable():
            raise ValueError(f"{what} {text!r} cannot be a NATS subject: {char!r} is not allowed")
    return tokens


def subject_of(event_type: str) -> str:
    """The NATS subject of `event_type` (the type itself); ValueError if it cannot be one."""
    for token in _tokens(event_type, "event type"):
        if "*" in token or ">" in token:
            raise ValueError(
                f"event type {event_type!r} cannot be a NATS subject: "
                "'*' and '>' are NATS wildcards"
            )
    return event_type


def subjects_of(pattern: str) -> tuple[str, ...]:
    """The NATS subjects that together match what `pattern` matches (ValueError if invalid).

    ``a.*.c`` -> ``a.*.c``; ``a.**`` -> ``a`` and ``a.>``; ``**`` -> ``>``.
    """
    compile_pattern(pattern)
    tokens = _tokens(pattern, "event type pattern")
    if any(">" in token for token in tokens):
        raise ValueError(f"invalid event type pattern {pattern!r}: '>' is not allowed")
    if tokens[-1] != "**":
        return (pattern,)
    if len(tokens) == 1:
        return (">",)
    prefix = ".".join(tokens[:-1])
    return (prefix, f"{prefix}.>")
