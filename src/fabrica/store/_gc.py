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
from collections.abc import AsyncIterator, Iterable
from dataclasses import dataclass
from typing import Any, Literal

from ..resource import Resource
from ..storage import BulkStorage, Conflict, Document, NotFound
from ._actor import SYSTEM_CONTROLLER, set_actor
from ._changes import Change
from ._owners import owner_exists
from ._store import ResourceStore

__all__ = ["GC_REASONS", "GarbageCollector"]

log = logging.getLogger("fabrica.gc")

AnyResource = Resource[Any, Any]
Reason = Literal["owner_deleted", "owner_gone_at_write", "orphan_at_start"]
GC_REASONS: tuple[Reason, ...] = ("owner_deleted", "owner_gone_at_write", "orphan_at_start")
_PAGE = 1000  # documents read at a time while looking for orphans


@dataclass(frozen=True, slots=True)
class _Dependent:
    """What the collector keeps of a resource with owners: its kind, uid and references."""

    cls: type[AnyResource]
    uid: str
    name: str
    owners: tuple[tuple[str, str], ...]  # (kind, uid) of each owner reference

    @classmethod
    def of(cls, obj: AnyResource) -> _Dependent:
        return cls(type(obj), obj.uid, obj.name, tuple(
            (ref.kind, ref.uid) for ref in obj.metadata.owner_references))


class _OwnersChanged(Exception):
    """The dependent's owner references are not the ones it was found orphaned with."""


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
        removed = 0
        for dependent in await self._orphans(report=True):
            removed += await self._delete_if_orphaned(dependent, "orphan_at_start", set())
        if removed:
            log.warning("garbage collector removed %d orphaned dependents at start (a "
                        "cascade a stop or a crash cut short)", removed)

    async def _collect(self, owners: set[str]) -> None:
        # Only dependents of the owners just deleted, and, as in Kubernetes, only once all
        # their owners are gone: a dependent with another live owner stays.
        if not owners:
            return
        removed = 0
        for dependent in await self._orphans():
            if any(uid in owners for _, uid in dependent.owners):
                removed += await self._delete_if_orphaned(dependent, "owner_deleted", owners)
        if removed:
            log.info("garbage collector deleted %d dependents of %d deleted owners", removed,
                     len(owners))

    async def _recheck(self, written: Iterable[AnyResource]) -> None:
        """Dependents just written with new owners: an owner deleted meanwhile may have
        been collected before the dependent was there to be found.

        Each owner is looked up once a wave (a rack's 5,376 nodes name 672 blades), in one
        read per kind where the storage reads many at once: every dependent here was
        written before the wave began, so an owner alive now outlived their writes (its
        deletion from now on is `_collect`'s), and a uid gone stays gone."""
        written = list(written)
        exists = await self._owners_now(written)
        for obj in written:
            if not await self._owners_gone(obj, exists):
                continue
            try:
                current = await self.store.get(type(obj), obj.uid)
            except NotFound:
                continue
            if await self._owners_gone(current, exists):
                await self._delete(_Dependent.of(current), "owner_gone_at_write")

    async def _owners_now(self, written: list[AnyResource]) -> dict[str, bool]:
        """Whether each owner `written` names exists, by uid (empty where the storage
        cannot read many at once: then `_owners_gone` reads each)."""
        storage = self.store.storage
        if not isinstance(storage, BulkStorage):
            return {}
        wanted: dict[type[AnyResource], set[str]] = {}
        for obj in written:
            for ref in obj.metadata.owner_references:
                cls = self.store.kinds.get(ref.kind)
                if cls is not None and cls.resource_info.is_uid(ref.uid):
                    wanted.setdefault(cls, set()).add(ref.uid)
        exists: dict[str, bool] = {}
        for cls, uids in wanted.items():
            found = await storage.get_many(cls.resource_info.plural, sorted(uids))
            exists.update((uid, uid in found) for uid in uids)
        return exists

    async def _owners_gone(self, obj: AnyResource, exists: dict[str, bool]) -> bool:
        refs = obj.metadata.owner_references
        for ref in refs:
            cls = self.store.kinds.get(ref.kind)
            if cls is None:
                return False  # of a kind this service cannot tell about
            alive = exists.get(ref.uid)
            if alive is None:
                alive = exists[ref.uid] = await owner_exists(self.store.storage, cls, ref.uid)
            if alive:
                return False
        return bool(refs)

    async def _orphans(self, report: bool = False) -> list[_Dependent]:
        """Resources with owner references of which none exists any more.

        Read as stored documents, a page at a time, keeping only uids and references: a
        sweep over 100,000 resources neither validates them all as objects (what made the
        first reads after a start wait) nor holds them all at once. The pages are no
        snapshot, so each orphan is checked again before it goes (`_delete_if_orphaned`)."""
        kinds = self.store.kinds
        alive: set[str] = set()
        dependents: list[_Dependent] = []
        for cls in kinds.values():
            async for doc in self._documents(cls):
                metadata = doc.get("metadata") or {}
                alive.add(metadata.get("uid", ""))
                refs = metadata.get("ownerReferences") or []
                if refs:
                    dependents.append(_Dependent(
                        cls, metadata.get("uid", ""), metadata.get("name", ""),
                        tuple((str(ref.get("kind", "")), str(ref.get("uid", "")))
                              for ref in refs)))
        unknown = sorted({(kind, dependent.uid) for dependent in dependents
                          for kind, _ in dependent.owners if kind not in kinds})
        if unknown and report:
            log.warning("garbage collector keeps %d dependents whose owner is of a kind not "
                        "served here (first: %s of %s)", len(unknown), *unknown[0])
        return [dependent for dependent in dependents
                if not any(uid in alive or kind not in kinds for kind, uid in dependent.owners)]

    async def _documents(self, cls: type[AnyResource]) -> AsyncIterator[Document]:
        plural, after = cls.resource_info.plural, None
        while True:
            page = await self.store.storage.list(plural, limit=_PAGE, after=after)
            for doc in page:
                yield doc
            if len(page) < _PAGE:
                return
            after = page[-1]["metadata"]["name"]

    async def _delete_if_orphaned(self, dependent: _Dependent, reason: Reason,
                                  gone: set[str]) -> int:
        """Delete `dependent` if none of its owners exists now. Owners in `gone` were just
        deleted; the others are looked up again, since the pages that found them missing
        are no snapshot (an owner may have been created after its kind was read)."""
        for kind, uid in dependent.owners:
            cls = self.store.kinds.get(kind)
            if uid not in gone and (cls is None or await owner_exists(self.store.storage,
                                                                      cls, uid)):
                return 0
        return await self._delete(dependent, reason)

    async def _delete(self, dependent: _Dependent, reason: Reason) -> int:
        def same_owners(current: AnyResource) -> None:
            if _Dependent.of(current).owners != dependent.owners:
                raise _OwnersChanged  # given another owner since: the next write rechecks

        try:
            await self.store.delete(dependent.cls, dependent.uid, precondition=same_owners)
        except (NotFound, Conflict, _OwnersChanged):
            return 0  # already gone, or changed under us: the next change brings it back here
        self.deleted += 1
        self.counts[reason] += 1
        level = logging.DEBUG if reason == "owner_deleted" else logging.WARNING
        owners = ", ".join(f"{kind} {uid}" for kind, uid in dependent.owners)
        log.log(level, "garbage collector deleted %s %s (%s): none of its owners exists "
                "(%s; %s)", dependent.cls.resource_info.kind, dependent.name, dependent.uid,
                owners, reason)
        return 1
