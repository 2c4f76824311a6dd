"""The controller: controller-runtime's parts, put together for a set of reconcilers.

- source (`EventSource`): the lifecycle events on the bus, parsed once;
- handler (`OwnerHandler`): event → keys, the resource itself and its nearest reconciled
  ancestor along ``ownerReferences``;
- queue: one `WorkQueue` per kind, keyed by uid: dedup, one worker per key at a time, a
  change during a reconcile queued again afterwards, failures retried with backoff;
- workers (`KindWorkers`): ``worker_count`` per kind, each with a timeout per reconcile.

It needs a store and a bus, not an HTTP server: a process of its own can run it, fed by a
`ChangePublisher` beside the store (its own writes) and a shared bus (everyone else's).
On start every existing resource of every reconciled kind is queued, so nothing changed
while it was down is missed (level-triggered); `stop` lets the reconciles in flight finish.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterable, Sequence
from typing import Any

from ..events import EventBus
from ..storage import NotFound
from ..store import ResourceStore, UnknownKind
from ._client import ReconcileClient
from ._handler import OwnerHandler, Owners
from ._metrics import ControllerMetrics
from ._queue import WorkQueue
from ._reconciler import ResourceReconciler
from ._shards import Shards
from ._source import EventSource
from ._tracing import ReconcileTracing
from ._workers import KindWorkers

__all__ = ["Controller"]

log = logging.getLogger("fabrica.reconcile")


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
        shards: Shards | None = None,
        tracing: ReconcileTracing | None = None,
    ) -> None:
        self.store = store
        self.bus = bus
        self.timeout = timeout
        self.event_prefix = event_prefix
        self.metrics = metrics or ControllerMetrics()
        self.shards = shards  # sharing the work with other processes: only our keys
        self.client = ReconcileClient(store)
        self._kinds: dict[str, KindWorkers] = {}
        self.skipped: list[str] = []
        for cls in reconcilers:
            if not cls.is_implemented():
                self.skipped.append(cls.kind.resource_info.kind)
                continue
            reconciler = cls(self.client, requeue_after=requeue_after)
            self._kinds[cls.kind.resource_info.kind] = KindWorkers(
                reconciler, worker_count, timeout=timeout, metrics=self.metrics, shards=shards,
                tracing=tracing)
        self.source = EventSource(bus, event_prefix=event_prefix)
        self.handler = OwnerHandler(self._kinds, self.enqueue, self._load_owners)

    @property
    def kinds(self) -> Sequence[str]:
        return list(self._kinds)

    def queue(self, kind: str) -> WorkQueue[str]:
        return self._kinds[kind].queue

    async def start(self) -> None:
        if not self._kinds:
            return
        await self.source.start(self.handler)
        for workers in self._kinds.values():
            workers.start()
        if self.shards is not None:  # each shard taken is resynced, now and later
            await self.shards.start(self._resync)
            return
        await self._resync(None)

    async def _resync(self, shards: set[int] | None) -> None:
        """Queue every existing resource (of `shards` only, when sharing the work)."""
        for kind, workers in self._kinds.items():
            existing = await self.store.list(self.store.kind(kind))
            queued = 0
            for obj in existing:
                if shards is None or self.shards is None or \
                        self.shards.shard_of(obj.uid) in shards:
                    workers.add(obj.uid)
                    queued += 1
            log.info("reconciler %s: %d workers, %d existing resources queued",
                     kind, workers.worker_count, queued)

    async def stop(self, timeout: float = 30.0) -> None:
        """Stop taking events; let the reconciles in flight finish (at most `timeout` s)."""
        await self.source.stop()
        tasks = [task for workers in self._kinds.values() for task in workers.shutdown()]
        if tasks:
            _, pending = await asyncio.wait(tasks, timeout=timeout)
            for task in pending:
                task.cancel()
            await asyncio.gather(*pending, return_exceptions=True)
        if self.shards is not None:
            await self.shards.stop()

    def enqueue(self, kind: str, uid: str) -> None:
        workers = self._kinds.get(kind)
        if self.shards is not None and not self.shards.owns(uid):
            return  # another controller's key
        if workers is not None:
            workers.add(uid)

    async def wait_idle(self, timeout: float = 60.0, settle: float = 0.05) -> None:
        """Until every queue is empty and no reconcile runs (delayed requeues aside)."""
        async with asyncio.timeout(timeout):
            while True:
                if not any(w.busy for w in self._kinds.values()):
                    await asyncio.sleep(settle)
                    if not any(w.busy for w in self._kinds.values()):
                        return
                await asyncio.sleep(0.01)

    async def _load_owners(self, kind: str, uid: str) -> Owners | None:
        try:
            obj = await self.store.get(self.store.kind(kind), uid)
        except (NotFound, UnknownKind):
            return None
        return kind, [(r.kind, r.uid) for r in obj.metadata.owner_references]
