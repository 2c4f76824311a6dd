"""The controller's seam for tracing (SPEC section 13): which writes caused a reconcile.

An event's ``traceparent`` (the CloudEvents distributed-tracing extension) is its cause.
`EventSource` sets `CAUSE` while its handler decides the keys, `KindWorkers` keep the causes
of each queued key with the time it was queued, and a `ReconcileTracing` (the service's,
only when it traces; this package never imports OpenTelemetry) wraps each reconcile in its
spans: the queue wait, then the reconcile, whose writes are its children.
"""

from __future__ import annotations

from collections.abc import Sequence
from contextlib import AbstractContextManager
from contextvars import ContextVar
from typing import Protocol

__all__ = ["CAUSE", "ReconcileTracing"]

#: The ``traceparent`` of the event being handled, if it had one.
CAUSE: ContextVar[str | None] = ContextVar("fabrica_reconcile_cause", default=None)


class ReconcileTracing(Protocol):
    def reconcile(self, kind: str, causes: Sequence[str], queued_at: float | None
                  ) -> AbstractContextManager[object]:
        """The spans of one reconcile of a key of `kind`, queued at `queued_at` (epoch
        seconds; None: unknown) by the writes whose ``traceparent`` are `causes`."""
        ...
