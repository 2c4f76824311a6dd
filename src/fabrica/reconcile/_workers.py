"""`KindWorkers`: the workers of one reconciled kind, taking keys off its `WorkQueue`.

Each worker reconciles one key at a time with a timeout; the result decides what happens
to the key: forgotten (success), queued again after a delay (``requeue_after``), or
retried with the queue's per-key backoff (``requeue`` or an exception).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from typing import Any

from ..store import SYSTEM_CONTROLLER, set_actor
from ._metrics import ControllerMetrics
from ._queue import QueueShutDown, WorkQueue
from ._reconciler import OVERTAKEN, ResourceReconciler
from ._result import Request, Result
from ._shards import Shards
from ._tracing import CAUSE, ReconcileTracing

__all__ = ["KindWorkers"]

log = logging.getLogger("fabrica.reconcile")

#: Causes kept per queued key: a key written a thousand times before its reconcile links
#: to the first few and the last.
_MAX_CAUSES = 16


class KindWorkers:
    def __init__(
        self,
        reconciler: ResourceReconciler[Any],
        worker_count: int,
        *,
        timeout: float,
        metrics: ControllerMetrics,
        shards: Shards | None = None,
        tracing: ReconcileTracing | None = None,
    ) -> None:
        self.reconciler = reconciler
        self.tracing = tracing
        # uid → (the traceparents of the writes that queued it, when it was first queued)
        self._causes: dict[str, tuple[list[str], float]] = {}
        self.kind = reconciler.kind.resource_info.kind
        self.queue: WorkQueue[str] = WorkQueue()
        self.worker_count = worker_count
        self.timeout = timeout
        self.metrics = metrics
        # The kind's gauge, looked up once: `add` runs for every event of a child (11,466
        # for a rack), and `labels` takes a lock and builds a key each time.
        self._depth = metrics.depth.labels(self.kind)
        self.shards = shards
        self._tasks: list[asyncio.Task[None]] = []

    @property
    def busy(self) -> bool:
        return bool(len(self.queue) or self.queue.in_flight)

    def add(self, uid: str) -> None:
        if self.tracing is not None:
            self._note_cause(uid, CAUSE.get())
        self.queue.add(uid)
        self._depth.set(len(self.queue))

    def start(self) -> None:
        self._tasks = [asyncio.create_task(self._work(), name=f"reconcile-{self.kind}-{n}")
                       for n in range(self.worker_count)]

    def shutdown(self) -> list[asyncio.Task[None]]:
        """Stop taking keys; the tasks end once their reconciles in flight finish."""
        self.queue.shutdown(drain=False)
        return self._tasks

    async def _work(self) -> None:
        queue, kind, metrics = self.queue, self.kind, self.metrics
        set_actor(SYSTEM_CONTROLLER)  # every write of this worker task is the controller's
        while True:
            try:
                uid = await queue.get()
            except QueueShutDown:
                return
            self._depth.set(len(queue))
            if self.shards is not None and not self.shards.begin(uid):
                queue.forget(uid)  # its shard moved on: its new holder resynced it
                queue.done(uid)
                continue
            started = time.perf_counter()
            try:
                # Not wait_for: on Python 3.11 a reconcile ending in the same turn as the
                # worker's cancel made it swallow the cancel, and the worker ran on.
                async with asyncio.timeout(self.timeout):
                    result = await self._reconcile(uid)
            except Exception as exc:
                metrics.errors.labels(kind).inc()
                metrics.retries.labels(kind).inc()
                metrics.reconciles.labels(kind, "error").inc()
                log.warning("reconcile %s %s failed (attempt %d): %s", kind, uid,
                            queue.num_requeues(uid) + 1, _describe(exc))
                queue.add_rate_limited(uid)
            else:
                metrics.reconciles.labels(kind, _outcome(result)).inc()
                if result.requeue_after is not None:
                    queue.forget(uid)
                    queue.add_after(uid, result.requeue_after)
                elif result.requeue:
                    queue.add_rate_limited(uid)
                else:
                    queue.forget(uid)
            finally:
                metrics.duration.labels(kind).observe(time.perf_counter() - started)
                if self.shards is not None:
                    self.shards.end(uid)
                queue.done(uid)


    def _note_cause(self, uid: str, cause: str | None) -> None:
        causes, _ = self._causes.setdefault(uid, ([], time.time()))
        if cause is not None and cause not in causes:
            if len(causes) >= _MAX_CAUSES:
                causes.pop()
            causes.append(cause)

    async def _reconcile(self, uid: str) -> Result:
        """One reconcile, in its spans when tracing (its writes are their children)."""
        spans: contextlib.AbstractContextManager[object] = contextlib.nullcontext()
        if self.tracing is not None:
            causes, queued_at = self._causes.pop(uid, ([], None))
            spans = self.tracing.reconcile(self.kind, causes, queued_at)
        with spans:
            return await self.reconciler.reconcile(Request(self.kind, uid))


def _outcome(result: Result) -> str:
    if result is OVERTAKEN:
        return "overtaken"  # someone else wrote the object meanwhile: decided again at once
    if result.requeue_after is not None or result.requeue:
        return "requeue"
    return "success"


def _describe(exc: BaseException) -> str:
    if isinstance(exc, TimeoutError):
        return "timed out"
    return f"{type(exc).__name__}: {exc}"
