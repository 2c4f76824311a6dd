"""What a reconcile is asked (`Request`) and what it answers (`Result`)."""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["Request", "Result", "TerminalError"]


@dataclass(frozen=True)
class Request:
    """The key of the object to reconcile, and nothing about why (level-triggered)."""

    kind: str
    uid: str


@dataclass(frozen=True)
class Result:
    """`requeue_after` seconds: look again then (it bypasses the failure backoff);
    `requeue`: look again soon, with backoff. Neither: done until something changes."""

    requeue: bool = False
    requeue_after: float | None = None


class TerminalError(Exception):
    """A failure that retrying cannot fix (bad input): recorded, and not retried."""
