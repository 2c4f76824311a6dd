"""Reconciliation: drive each resource from its spec (desired) to its status (observed).

Changes flow source → handler → queue → workers (controller-runtime's split): the
`Controller` turns events into keys and `WorkQueue.add`s them; the queue merges duplicates,
keeps each key with at most one worker, and delays retries with a `RateLimiter`
(`ExponentialBackoff` by default); workers call a `ResourceReconciler`, which loads the
current state, runs the project's ``reconcile_<kind>`` and saves status.
"""

from ._backoff import ExponentialBackoff, RateLimiter
from ._client import ReconcileClient
from ._controller import Controller
from ._metrics import ControllerMetrics
from ._queue import QueueShutDown, WorkQueue
from ._reconciler import ResourceReconciler
from ._result import Request, Result, TerminalError

__all__ = [
    "Controller",
    "ControllerMetrics",
    "ExponentialBackoff",
    "QueueShutDown",
    "RateLimiter",
    "ReconcileClient",
    "Request",
    "ResourceReconciler",
    "Result",
    "TerminalError",
    "WorkQueue",
]
