"""The garbage collector: when an owner goes, its dependents go too (Kubernetes' background
cascading deletion).

It listens for ``deleted`` changes and deletes, in the background, every resource whose
``ownerReferences`` name a deleted uid, wave by wave (a chassis' blades, then their nodes),
each deletion going through the store so dependents' finalizers are honoured and their own
dependents follow. One scan of each kind per wave, not per deleted object, so a rack of
11,000 children costs a few listings, not 11,000 of them. On start it sweeps the whole store
for dependents whose owners no longer exist, so a crash in the middle of a cascade is
finished after the restart.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from ..resource import Resource
from ..storage import Conflict, NotFound
from ._actor import SYSTEM_CONTROLLER, set_actor
from ._changes import Change
from ._store import ResourceStore

__all__ = ["GarbageCollector"]

log = logging.getLogger("fabrica.gc")


class GarbageCollector:
    def __init__(self, store: ResourceStore) -> None:
        self.store = store
        self._pending: set[str] = set()
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._collecting = False
        self.deleted = 0
        store.add_listener(self._on_change)

    async def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="fabrica-gc")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            try:
                await self._task
            except asyncio.CancelledError:
                pass
            self._task = None

    async def wait_idle(self, timeout: float = 30) -> None:
        """For tests and shutdown: until no deleted owner is waiting for its dependents."""
        async with asyncio.timeout(timeout):
            while self._pending or self._wake.is_set() or self._collecting:
                await asyncio.sleep(0.01)

    async def _on_change(self, change: Change) -> None:
        if change.action == "deleted":
            self._pending.add(change.resource.uid)
            self._wake.set()

    async def _run(self) -> None:
        set_actor(SYSTEM_CONTROLLER)  # this task's deletions are the system's, not a client's
        try:
            await self.sweep()
        except Exception:
            log.exception("garbage collection sweep failed")
        while True:
            await self._wake.wait()
            self._wake.clear()
            owners, self._pending = self._pending, set()
            self._collecting = True  # a wave in progress is not idle, though nothing waits
            try:
                await self._collect(owners)
            except Exception:
                log.exception("garbage collection failed; will retry")
                self._pending |= owners
                await asyncio.sleep(1)
                self._wake.set()
            finally:
                self._collecting = False

    async def sweep(self) -> None:
        """Delete every dependent whose owners are all gone."""
        orphans = await self._orphans()
        for obj in orphans:
            await self._delete(obj)
        if orphans:
            log.info("garbage collector removed %d orphaned dependents", len(orphans))

    async def _collect(self, owners: set[str]) -> None:
        # Only dependents of the owners just deleted, and, as in Kubernetes, only once all
        # their owners are gone: a dependent with another live owner stays.
        for obj in await self._orphans():
            if any(ref.uid in owners for ref in obj.metadata.owner_references):
                await self._delete(obj)  # its own "deleted" change queues the next wave

    async def _orphans(self) -> list[Resource[Any, Any]]:
        """Resources with owner references of which none exists any more."""
        everything = [obj for cls in self.store.kinds.values()
                      for obj in await self.store.list(cls)]
        alive = {obj.uid for obj in everything}
        return [obj for obj in everything if obj.metadata.owner_references
                and not any(ref.uid in alive for ref in obj.metadata.owner_references)]

    async def _delete(self, obj: Resource[Any, Any]) -> None:
        try:
            await self.store.delete(type(obj), obj.uid)
            self.deleted += 1
        except (NotFound, Conflict):
            pass  # already gone, or changed under us: the next change brings it back here
