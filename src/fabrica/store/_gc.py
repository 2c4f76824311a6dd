"""The garbage collector: when an owner goes, its dependents go too (Kubernetes' background
cascading deletion), promptly and visibly.

It listens for ``deleted`` changes and deletes, in the background, every resource whose
``ownerReferences`` name a deleted uid, wave by wave (a chassis' blades, then their nodes),
each deletion going through the store so dependents' finalizers are honoured, their own
dependents follow and each one publishes its ``deleted`` event. One scan of each kind per
wave, not per deleted object, so a rack of 11,000 children costs a few listings, not 11,000
of them. As in Kubernetes, a dependent goes only once none of its owners exists.

No reference dangles from the start: the store refuses a write that adds an owner of a kind
not served here, or one that does not exist (`_owners.py`). What the check cannot see is an
owner deleted between the check and the write, or deleted while the dependent's write was
in flight in another process (that owner's wave may have listed before the dependent was
committed): so the collector also hears of every write of a dependent's spec or metadata
and, right after it, deletes the dependent if none of its owners exists any more.

On start it sweeps the whole store for dependents whose owners no longer exist, so a crash
in the middle of a cascade is finished after the restart; the sweep is crash recovery
only, and says what it removes. An owner reference to a kind not served (any more) cannot
be decided: it is kept, and the sweep says so once.

Each deletion is counted by reason in `counts` (``fabrica_gc_deleted_total{reason}``):
``owner_deleted`` (a cascade), ``owner_gone_at_write`` (the race above) and
``orphan_at_start`` (the sweep).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterable
from typing import Any, Literal

from ..resource import Resource
from ..storage import Conflict, NotFound
from ._actor import SYSTEM_CONTROLLER, set_actor
from ._changes import Change
from ._owners import owner_exists
from ._store import ResourceStore

__all__ = ["GC_REASONS", "GarbageCollector"]

log = logging.getLogger("fabrica.gc")

AnyResource = Resource[Any, Any]
Reason = Literal["owner_deleted", "owner_gone_at_write", "orphan_at_start"]
GC_REASONS: tuple[Reason, ...] = ("owner_deleted", "owner_gone_at_write", "orphan_at_start")


class GarbageCollector:
    def __init__(self, store: ResourceStore) -> None:
        self.store = store
        self._pending: set[str] = set()
        self._written: dict[str, AnyResource] = {}  # dependents just given new owners
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._collecting = False
        self.deleted = 0
        self.counts: dict[Reason, int] = dict.fromkeys(GC_REASONS, 0)
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
            while self._pending or self._written or self._wake.is_set() or self._collecting:
                await asyncio.sleep(0.01)

    async def _on_change(self, change: Change) -> None:
        obj = change.resource
        if change.action == "deleted":
            self._pending.add(obj.uid)
            self._wake.set()
        elif change.update_type != "status" and obj.metadata.owner_references:
            # (Every such write, not only those that added an owner: a change function
            # may have changed the state it was given, so `previous` cannot tell.)
            self._written[obj.uid] = obj
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
            written, self._written = self._written, {}
            self._collecting = True  # a wave in progress is not idle, though nothing waits
            try:
                await self._collect(owners)
                await self._recheck(written.values())
            except Exception:
                log.exception("garbage collection failed; will retry")
                self._pending |= owners
                self._written = {**written, **self._written}
                await asyncio.sleep(1)
                self._wake.set()
            finally:
                self._collecting = False

    async def sweep(self) -> None:
        """Delete every dependent whose owners are all gone (crash recovery)."""
        orphans = await self._orphans(report=True)
        for obj in orphans:
            await self._delete(obj, "orphan_at_start")
        if orphans:
            log.warning("garbage collector removed %d orphaned dependents at start (a "
                        "cascade a stop or a crash cut short)", len(orphans))

    async def _collect(self, owners: set[str]) -> None:
        # Only dependents of the owners just deleted, and, as in Kubernetes, only once all
        # their owners are gone: a dependent with another live owner stays.
        if not owners:
            return
        removed = 0
        for obj in await self._orphans():
            if any(ref.uid in owners for ref in obj.metadata.owner_references):
                removed += await self._delete(obj, "owner_deleted")
        if removed:
            log.info("garbage collector deleted %d dependents of %d deleted owners", removed,
                     len(owners))

    async def _recheck(self, written: Iterable[AnyResource]) -> None:
        """Dependents just written with new owners: an owner deleted meanwhile may have
        been collected before the dependent was there to be found."""
        for obj in written:
            if not await self._owners_gone(obj):
                continue
            try:
                current = await self.store.get(type(obj), obj.uid)
            except NotFound:
                continue
            if await self._owners_gone(current):
                await self._delete(current, "owner_gone_at_write")

    async def _owners_gone(self, obj: AnyResource) -> bool:
        refs = obj.metadata.owner_references
        for ref in refs:
            cls = self.store.kinds.get(ref.kind)
            if cls is None or await owner_exists(self.store.storage, cls, ref.uid):
                return False  # alive, or of a kind this service cannot tell about
        return bool(refs)

    async def _orphans(self, report: bool = False) -> list[AnyResource]:
        """Resources with owner references of which none exists any more."""
        kinds = self.store.kinds
        everything = [obj for cls in kinds.values() for obj in await self.store.list(cls)]
        alive = {obj.uid for obj in everything}
        unknown = sorted({(ref.kind, obj.uid) for obj in everything
                          for ref in obj.metadata.owner_references if ref.kind not in kinds})
        if unknown and report:
            log.warning("garbage collector keeps %d dependents whose owner is of a kind not "
                        "served here (first: %s of %s)", len(unknown), *unknown[0])
        return [obj for obj in everything if obj.metadata.owner_references
                and not any(ref.uid in alive or ref.kind not in kinds
                            for ref in obj.metadata.owner_references)]

    async def _delete(self, obj: AnyResource, reason: Reason) -> int:
        owners = ", ".join(f"{ref.kind} {ref.uid}" for ref in obj.metadata.owner_references)
        try:
            await self.store.delete(type(obj), obj.uid)
        except (NotFound, Conflict):
            return 0  # already gone, or changed under us: the next change brings it back here
        self.deleted += 1
        self.counts[reason] += 1
        level = logging.DEBUG if reason == "owner_deleted" else logging.WARNING
        log.log(level, "garbage collector deleted %s %s (%s): none of its owners exists "
                "(%s; %s)", obj.resource_info.kind, obj.name, obj.uid, owners, reason)
        return 1
