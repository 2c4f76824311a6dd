"""The controller: events in, keys queued, workers reconciling (controller-runtime's shape).

source: the event bus. Every lifecycle event (whoever wrote) is mapped to keys:
  the resource itself when its kind has a reconciler, except status-only writes of that
  kind, which a reconciler makes itself (controller-runtime's GenerationChanged predicate);
  and the nearest reconciled ancestor along its ``ownerReferences``: a rack hears that a
  node three levels down was deleted (node → blade → chassis → rack) and puts it back.
  Owners are looked up in a map fed by the events themselves, falling back to the store.
queue: one `WorkQueue` per kind, keyed by uid: dedup, one worker per key at a time, a
  change during a reconcile re-queued afterwards, failures retried with per-key backoff.
workers: `worker_count` per kind, each with a timeout per reconcile.
On start every existing resource of every reconciled kind is queued, so nothing changed
while the server was down is missed; `stop` lets the reconciles in flight finish.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Iterable, Sequence
from typing import Any

from ..events import CloudEvent, EventBus, Subscription
from ..storage import NotFound
from ..store import ResourceStore, UnknownKind
from ._client import ReconcileClient
from ._metrics import ControllerMetrics
from ._queue import QueueShutDown, WorkQueue
from ._reconciler import ResourceReconciler
from ._result import Request, Result

__all__ = ["Controller"]

log = logging.getLogger("fabrica.reconcile")

_MAX_OWNER_DEPTH = 8


class _KindWorkers:
    def __init__(self, reconciler: ResourceReconciler[Any], workers: int) -> None:
        self.reconciler = reconciler
        self.kind = reconciler.kind.resource_info.kind
        self.queue: WorkQueue[str] = WorkQueue()
        self.workers = workers
        self.tasks: list[asyncio.Task[None]] = []


class Controller:
    """Runs `reconcilers` (classes) against `store`, driven by events on `bus`."""

    def __init__(
        self,
        store: ResourceStore,
        bus: EventBus,
        reconcilers: Iterable[type[ResourceReconciler[Any]]],
        *,
        worker_count: int = 5,
        requeue_after: float | None = 300.0,
        timeout: float = 300.0,
        event_prefix: str = "io.fabrica",
        metrics: ControllerMetrics | None = None,
    ) -> None:
        self.store = store
        self.bus = bus
        self.timeout = timeout
        self.event_prefix = event_prefix
        self.metrics = metrics or ControllerMetrics()
        self.client = ReconcileClient(store)
        self._kinds: dict[str, _KindWorkers] = {}
        self.skipped: list[str] = []
        for cls in reconcilers:
            if not cls.is_implemented():
                self.skipped.append(cls.kind.resource_info.kind)
                continue
            reconciler = cls(self.client, requeue_after=requeue_after)
            self._kinds[cls.kind.resource_info.kind] = _KindWorkers(reconciler, worker_count)
        self._subscription: Subscription | None = None
        # uid → (kind, owner references) of resources seen in events: the ancestor walk.
        self._owners: dict[str, tuple[str, list[tuple[str, str]]]] = {}

    @property
    def kinds(self) -> Sequence[str]:
        return list(self._kinds)

    def queue(self, kind: str) -> WorkQueue[str]:
        return self._kinds[kind].queue

    async def start(self) -> None:
        if not self._kinds:
            return
        self._subscription = await self.bus.subscribe(
            f"{self.event_prefix}.**", self._on_event, name="reconcile-controller")
        for workers in self._kinds.values():
            workers.tasks = [
                asyncio.create_task(self._work(workers), name=f"reconcile-{workers.kind}-{n}")
                for n in range(workers.workers)
            ]
        for kind, workers in self._kinds.items():
            existing = await self.store.list(self.store.kind(kind))
            for obj in existing:
                workers.queue.add(obj.uid)
            log.info("reconciler %s: %d workers, %d existing resources queued",
                     kind, workers.workers, len(existing))

    async def stop(self, timeout: float = 30.0) -> None:
        """Stop taking events; let the reconciles in flight finish (at most `timeout` s)."""
        if self._subscription is not None:
            await self._subscription.close()
            self._subscription = None
        for workers in self._kinds.values():
            workers.queue.shutdown(drain=False)
        tasks = [t for w in self._kinds.values() for t in w.tasks]
        if tasks:
            done, pending = await asyncio.wait(tasks, timeout=timeout)
            for task in pending:
                task.cancel()
            await asyncio.gather(*pending, return_exceptions=True)

    def enqueue(self, kind: str, uid: str) -> None:
        workers = self._kinds.get(kind)
        if workers is not None:
            workers.queue.add(uid)
            self.metrics.depth.labels(kind).set(len(workers.queue))

    async def wait_idle(self, timeout: float = 60.0, settle: float = 0.05) -> None:
        """Until every queue is empty and no reconcile runs (delayed requeues aside)."""
        async with asyncio.timeout(timeout):
            while True:
                busy = any(len(w.queue) or w.queue.in_flight for w in self._kinds.values())
                if not busy:
                    await asyncio.sleep(settle)
                    if not any(len(w.queue) or w.queue.in_flight for w in self._kinds.values()):
                        return
                await asyncio.sleep(0.01)

    # -- source → keys -------------------------------------------------------------------

    async def _on_event(self, event: CloudEvent) -> None:
        kind, uid = event.resourcekind, event.resourceuid
        if kind is None or uid is None or event.action is None:
            return  # condition events and others: the lifecycle event already told us
        data = event.data if isinstance(event.data, dict) else {}
        status_only = (data.get("metadata") or {}).get("updateType") == "status"
        if kind in self._kinds and not status_only:
            self.enqueue(kind, uid)
        owners = _owner_refs(data.get("resource") or {})
        if event.action == "deleted":
            self._owners.pop(uid, None)
        else:
            self._owners[uid] = (kind, owners)
        for owner_kind, owner_uid in owners:
            await self._enqueue_ancestor(owner_kind, owner_uid)

    async def _enqueue_ancestor(self, kind: str, uid: str, depth: int = 0) -> None:
        if kind in self._kinds:
            self.enqueue(kind, uid)
            return
        if depth >= _MAX_OWNER_DEPTH:
            return
        known = self._owners.get(uid)
        if known is None:
            known = await self._load_owners(kind, uid)
        for owner_kind, owner_uid in known[1] if known else ():
            await self._enqueue_ancestor(owner_kind, owner_uid, depth + 1)

    async def _load_owners(self, kind: str, uid: str) -> tuple[str, list[tuple[str, str]]] | None:
        try:
            obj = await self.store.get(self.store.kind(kind), uid)
        except (NotFound, UnknownKind):
            return None
        found = (kind, [(r.kind, r.uid) for r in obj.metadata.owner_references])
        self._owners[uid] = found
        return found

    # -- workers -------------------------------------------------------------------------

    async def _work(self, workers: _KindWorkers) -> None:
        queue, kind, metrics = workers.queue, workers.kind, self.metrics
        while True:
            try:
                uid = await queue.get()
            except QueueShutDown:
                return
            metrics.depth.labels(kind).set(len(queue))
            started = time.perf_counter()
            try:
                result = await asyncio.wait_for(
                    workers.reconciler.reconcile(Request(kind, uid)), self.timeout)
            except Exception as exc:
                metrics.errors.labels(kind).inc()
                metrics.retries.labels(kind).inc()
                metrics.reconciles.labels(kind, "error").inc()
                delay_failures = queue.num_requeues(uid)
                log.warning("reconcile %s %s failed (attempt %d): %s", kind, uid,
                            delay_failures + 1, _describe(exc))
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
                queue.done(uid)


def _owner_refs(resource: dict[str, Any]) -> list[tuple[str, str]]:
    refs = (resource.get("metadata") or {}).get("ownerReferences") or []
    return [(r["kind"], r["uid"]) for r in refs
            if isinstance(r, dict) and isinstance(r.get("kind"), str)
            and isinstance(r.get("uid"), str)]


def _outcome(result: Result) -> str:
    if result.requeue_after is not None or result.requeue:
        return "requeue"
    return "success"


def _describe(exc: BaseException) -> str:
    if isinstance(exc, TimeoutError):
        return "timed out"
    return f"{type(exc).__name__}: {exc}"
