"""Reconciliation: drive each resource from its spec (desired) to its status (observed).

Changes flow source → handler → queue → workers (controller-runtime's split): the
`EventSource` hands each lifecycle event, parsed once, to the `OwnerHandler`, which
decides the keys (the resource, its nearest reconciled owner) and `WorkQueue.add`s them;
the queue merges duplicates, keeps each key with at most one worker, and delays retries
with a `RateLimiter` (`ExponentialBackoff` by default) on a `Clock` (the loop's by
default); `KindWorkers` call a `ResourceReconciler`, which loads the current state, runs
the project's ``reconcile_<kind>`` and saves status through the store's one write path. The
`Controller` puts these together; it needs a store and a bus, not an HTTP server. With
several controller processes, `Shards` gives each a share of the keys (database leases).
"""

from ._backoff import ExponentialBackoff, RateLimiter
from ._client import ReconcileClient
from ._clock import Clock, LoopClock, Timer
from ._controller import Controller
from ._handler import OwnerHandler
from ._metrics import ControllerMetrics
from ._queue import QueueShutDown, WorkQueue
from ._reconciler import ResourceReconciler
from ._result import Request, Result, TerminalError
from ._shards import Shards
from ._source import EventSource
from ._tracing import ReconcileTracing
from ._workers import KindWorkers

__all__ = [
    "Clock",
    "Controller",
    "ControllerMetrics",
    "EventSource",
    "ExponentialBackoff",
    "KindWorkers",
    "LoopClock",
    "OwnerHandler",
    "QueueShutDown",
    "RateLimiter",
    "ReconcileClient",
    "ReconcileTracing",
    "Request",
    "ResourceReconciler",
    "Result",
    "Shards",
    "TerminalError",
    "Timer",
    "WorkQueue",
]
