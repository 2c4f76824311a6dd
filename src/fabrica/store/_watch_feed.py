"""`KindFeed`: one kind's view of the storage change log, its cache and its watchers.

The feed follows ``storage.changes(after=revision)``: the change log is the one order every
process agrees on, so a write made by another process sharing the storage reaches this
process's cache and watchers exactly as its own writes do. Its own writes only wake it up
(the store's change listener): it applies nothing out of the log's order, so revision r is
applied only after every revision before it, whoever wrote it.

Each batch it reads is applied in order to the cache (when the kind is cached), appended to
a ring of recent changes (for watches resuming from a recent resourceVersion, with the
labels each resource had before, for label-filtered watches) and handed to every watcher.

Reads are consistent reads from cache, as Kubernetes does them: before a get or a list is
answered from memory the feed asks the storage for its latest revision and catches up to
it, so a client that wrote through another process (or this one) reads its write. A kind is
cached from its first read on (filled in the background: reads go to storage meanwhile),
as long as it holds at most `max_objects` resources; beyond that it is served from storage
and tried again later. A poller reads the log every `poll_interval` seconds while the kind
has watchers or was read lately; otherwise the kind costs nothing until its next read.

If the log moved on past what the feed last read (compacted beyond it: the feed was idle
for very long, or the storage was reset), the feed cannot know what it missed: its watchers
end with ERROR 410, the cache is dropped and filled again.

A watch from a resourceVersion the log has not reached is never started past the feed (it
would drop every change up to that version): the feed follows the log for up to
`version_wait` seconds until it gets there (a version another process handed out an
instant ago), and otherwise refuses it with `ResourceVersionTooLarge` (one from before a
restore, or from another storage), as the Kubernetes watch cache refuses "too large
resource version"; the client lists again.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections import deque
from collections.abc import Awaitable, Callable
from typing import Any

from ..resource import Resource, Selector
from ..storage import Document, Gone, Storage, StorageError
from ._watch_memory import WatchMemory
from ._watch_objects import NAME_FIELD, Entry, KindObjects, exact_objects, exact_snapshot
from ._watchers import UNKNOWN, Encode, Record, Watcher

__all__ = ["FeedSettings", "KindFeed", "ResourceVersionTooLarge"]

log = logging.getLogger("fabrica.store")

_BATCH = 1000
_RETRY_CACHE_AFTER = 60.0
_IDLE_AFTER = 30.0
_WAKE_GAP = 0.005
_CLOSE_WAIT = 5.0
_SNAPSHOT_ATTEMPTS = 3


_VERSION_POLL = 0.05
RETRY_AFTER = 1


class ResourceVersionTooLarge(Exception):
    """A watch from `requested`, which the change log had not reached (it was at
    `current`) after the feed waited for it: list again (Kubernetes answers 504 Timeout,
    "Too large resource version"), after `retry_after` seconds."""

    def __init__(self, kind: str, requested: int, current: int) -> None:
        super().__init__(f"too large resource version: {requested}, current: {current}")
        self.kind = kind
        self.requested = requested
        self.current = current
        self.retry_after = RETRY_AFTER


class FeedSettings:
    """The bounds of every feed (see `WatchCache`)."""

    def __init__(self, *, max_objects: int, ring_size: int, queue_size: int,
                 poll_interval: float, memory: WatchMemory | None = None,
                 version_wait: float = 3.0) -> None:
        self.max_objects = max_objects
        self.ring_size = ring_size
        self.queue_size = queue_size
        self.poll_interval = poll_interval
        self.memory = memory or WatchMemory()
        self.version_wait = version_wait


class KindFeed:
    def __init__(self, cls: type[Resource[Any, Any]], storage: Storage, settings: FeedSettings,
                 encode: Encode, render: Encode) -> None:
        self.cls = cls
        self.info = cls.resource_info
        self.collection = self.info.plural
        # The fields `?fieldSelector=` may name, indexed by the cache (a name is its own).
        self.paths = tuple(path for path in self.info.rules.selectable
                           if path != NAME_FIELD)
        self.storage = storage
        self.settings = settings
        self.encode = encode
        self.render = render
        self.revision: int | None = None  # every change up to here is applied
        self.cache: KindObjects | None = None
        self.ring: deque[Record] = deque()
        self.ring_floor = 0  # the ring holds every change after this, up to `revision`
        self.watchers: set[Watcher] = set()
        self._lock = asyncio.Lock()
        self._snapshots = asyncio.Lock()
        self._wake = asyncio.Event()
        self._poller: asyncio.Task[None] | None = None
        self._filling: asyncio.Task[None] | None = None
        self._fill_after = 0.0
        self._last_read = 0.0
        self._closed = False
        self._latest = _unbounded_latest(storage)
        self._checks_started = 0
        self._checked = (0, 0)  # (number, value) of the newest finished check of latest
        self._check: tuple[int, asyncio.Future[int]] | None = None

    # -- reads ---------------------------------------------------------------------------

    async def current(self) -> KindObjects | None:
        """The cache at the storage's latest revision, or None: read storage instead."""
        self._last_read = time.monotonic()
        if self.cache is None:
            self._start_filling()
            return None
        self._ensure_poller()
        latest = await self._fresh_latest()
        if self.revision is None or self.revision < latest:
            await self.sync(until=latest)
        if self.revision is None or self.revision < latest:
            return None
        return self.cache

    async def _fresh_latest(self) -> int:
        """The storage's latest revision, from a check that started after this call did.

        A read must see every write that completed before it arrived; any check of
        `latest` that starts after the read arrived is as good as its own. So reads that
        arrive together share one: each lets the loop turn once, and the first to run again
        checks for them all (a burst of gets costs one `latest`, on SQL one query).
        """
        wanted = self._checks_started + 1
        await asyncio.sleep(0)
        inflight = self._check
        if inflight is not None and inflight[0] >= wanted:
            return await asyncio.shield(inflight[1])
        if self._checked[0] >= wanted:
            return self._checked[1]
        self._checks_started += 1
        number = self._checks_started
        check: asyncio.Future[int] = asyncio.get_running_loop().create_future()
        self._check = (number, check)
        try:  # (no task of its own: the file backend answers without suspending)
            value = await self._latest(self.collection)
        except BaseException as exc:
            if isinstance(exc, asyncio.CancelledError):
                check.cancel()
            else:
                check.set_exception(exc)
                check.exception()  # (retrieved: whoever shares it gets it raised)
            raise
        finally:
            if self._check is not None and self._check[0] == number:
                self._check = None
        check.set_result(value)
        if number > self._checked[0]:
            self._checked = (number, value)
        return value

    def wire(self, entry: Entry, api_version: str) -> bytes:
        return entry.wire(self.info.version, api_version, self.render_or_encode)

    def render_or_encode(self, doc: Document, api_version: str) -> bytes:
        """The storage version rendered for the entry to keep; others through the store's
        cache of encodings."""
        if api_version == self.info.version:
            return self.render(doc, api_version)
        return self.encode(doc, api_version)

    # -- watches -------------------------------------------------------------------------

    async def watch(self, *, resource_version: int | None, selector: Selector | None,
                    api_version: str) -> Watcher:
        """A watcher from `resource_version` (every change after it), or from now (every
        current match ADDED first); `ResourceVersionTooLarge` for a version the log does
        not reach within `version_wait` seconds."""
        self._last_read = time.monotonic()
        if resource_version is None:
            return await self._watch_from_now(selector, api_version)
        await self._reach(resource_version)
        async with self._lock:
            await self._start()
            await self._sync_locked(None)
            if self.revision is None:  # the log moved on under us: a watch starts over
                return self._expired(resource_version, selector, api_version)
            if resource_version >= self.ring_floor:
                backlog = [r for r in self.ring if r.revision > resource_version]
                return self._register(resource_version, selector, api_version, backlog=backlog)
            fetch = (self.storage, self.collection, self.revision)
            return self._register(resource_version, selector, api_version, fetch=fetch)

    async def _reach(self, revision: int) -> None:
        """Follow the log until the feed has applied `revision`, for at most
        `version_wait` seconds; `ResourceVersionTooLarge` if it has not by then."""
        if self.revision is not None and self.revision >= revision:
            return
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.settings.version_wait
        while True:
            await self.sync()
            if self.revision is None or self.revision >= revision:
                return  # (None: lost, which the caller answers with a 410)
            left = deadline - loop.time()
            if left <= 0:
                raise ResourceVersionTooLarge(self.info.kind, revision, self.revision)
            await asyncio.sleep(min(_VERSION_POLL, left))

    async def _watch_from_now(self, selector: Selector | None, api_version: str) -> Watcher:
        cache = await self.current()
        if cache is None and (filling := self._filling) is not None:
            await asyncio.wait({filling})  # share the cache being filled: no copy per watch
            cache = await self.current()
        if cache is not None:
            async with self._lock:  # the objects and the revision, with no change between
                if self.cache is cache and self.revision is not None:
                    return self._register(self.revision, selector, api_version,
                                          initial=cache.page(selector, None, None),
                                          render=lambda entry: self.wire(entry, api_version))
        async with self._snapshots:  # one at a time: each is the whole kind, parsed
            revision, docs = await self.snapshot(selector=selector)
            initial = [_compact(doc) for doc in docs]  # this watch's own: as bytes
            del docs
        async with self._lock:
            await self._start(revision)
            await self._sync_locked(None)
            if self.revision is None:
                return self._expired(revision, selector, api_version)
            backlog = [r for r in self.ring if r.revision > revision]
            fetch = None
            if revision < self.ring_floor:
                fetch = (self.storage, self.collection, self.revision)
            return self._register(revision, selector, api_version, initial=initial,
                                  private=True, render=lambda raw: self.wire(
                                      Entry(json.loads(raw)), api_version),
                                  backlog=backlog, fetch=fetch)

    async def snapshot(self, **page: Any) -> tuple[int, list[Document]]:
        """`exact_snapshot` of the kind; tried again should the log be compacted past its
        start meanwhile (a list cannot answer 410)."""
        for attempt in range(_SNAPSHOT_ATTEMPTS):
            try:
                return await exact_snapshot(self.storage, self.collection, **page)
            except Gone:
                if attempt + 1 == _SNAPSHOT_ATTEMPTS:
                    raise
        raise AssertionError("unreachable")

    def _expired(self, cursor: int, selector: Selector | None, api_version: str) -> Watcher:
        watcher = Watcher(kind=self.info.kind, selector=selector, api_version=api_version,
                          cursor=cursor, queue_size=0, encode=self.encode)
        watcher.expire("the server lost its place in the change log; list and watch again")
        return watcher

    def _register(self, cursor: int, selector: Selector | None, api_version: str,
                  **start: Any) -> Watcher:
        watcher = Watcher(kind=self.info.kind, selector=selector, api_version=api_version,
                          cursor=cursor, queue_size=self.settings.queue_size,
                          encode=self.encode, on_close=self.watchers.discard,
                          memory=self.settings.memory, **start)
        self.watchers.add(watcher)
        self._ensure_poller()
        return watcher

    # -- following the log ---------------------------------------------------------------

    def wake(self) -> None:
        """A write committed here: read the log now rather than at the next poll."""
        self._wake.set()

    async def sync(self, until: int | None = None) -> None:
        """Apply the log's changes after `revision` (at least up to `until`)."""
        async with self._lock:
            await self._start()
            await self._sync_locked(until)

    async def _start(self, revision: int | None = None) -> None:
        """Follow the log from `revision` (default: its latest) if not following yet."""
        if self.revision is None:
            start = await self.storage.latest(self.collection) if revision is None else revision
            self.revision = self.ring_floor = start

    async def _sync_locked(self, until: int | None) -> None:
        """Apply the changes up to the storage's latest revision (read first: every change
        up to it is readable, so a partial batch means there is no other change up to it,
        and the position moves there even when the last revisions were no change at all,
        a failed write's number)."""
        if self.revision is None:
            return
        latest = await self._latest(self.collection)
        if until is None or until < latest:
            until = latest
        while self.revision is not None and self.revision < until:
            try:
                batch = await self.storage.changes(self.collection, self.revision, _BATCH)
            except Gone as exc:
                self._lost(exc)
                return
            if batch:
                self._apply(batch)
            if len(batch) < _BATCH:
                if self.revision is not None:
                    self.revision = max(self.revision, latest)
                return

    def _apply(self, batch: list[Any]) -> None:
        records = []
        cache = self.cache
        for change in batch:
            if cache is None:
                records.append(Record(change, UNKNOWN))
                continue
            old = cache.apply(change)
            records.append(Record(change, None) if old is None
                           else Record(change, old.labels, cache.values(old)))
        self.revision = batch[-1].revision
        ring = self.ring
        ring.extend(records)
        while len(ring) > self.settings.ring_size:
            self.ring_floor = ring.popleft().revision
        for watcher in list(self.watchers):
            watcher.offer(records)
        if cache is not None and len(cache) > self.settings.max_objects:
            self._drop_cache(f"it holds more than {self.settings.max_objects} resources")

    def _lost(self, exc: Gone) -> None:
        log.warning("the %s change log was compacted past this process's position (%s): "
                    "ending its watches, refilling its cache", self.collection, exc)
        for watcher in list(self.watchers):
            watcher.expire("the server lost its place in the change log; list and watch "
                           "again")
        self.cache = None
        self.revision = None
        self.ring.clear()

    def _drop_cache(self, why: str) -> None:
        log.info("%s: not cached (%s); served from storage, tried again in %g s",
                 self.collection, why, _RETRY_CACHE_AFTER)
        self.cache = None
        self._fill_after = time.monotonic() + _RETRY_CACHE_AFTER

    # -- filling the cache ---------------------------------------------------------------

    def _start_filling(self) -> None:
        if self._closed or self._filling is not None or self.settings.max_objects <= 0 \
                or time.monotonic() < self._fill_after:
            return
        self._filling = asyncio.create_task(self._fill(), name=f"fabrica.cache.{self.collection}")

    async def _fill(self) -> None:
        try:
            revision, entries = await exact_objects(self.storage, self.collection,
                                                    most=self.settings.max_objects,
                                                    paths=self.paths)
            if len(entries) > self.settings.max_objects:
                self._drop_cache(f"it holds {len(entries)} resources, more than "
                                 f"{self.settings.max_objects}")
                return
            cache = KindObjects(entries, self.paths)
            async with self._lock:
                await self._start(revision)
                assert self.revision is not None
                if self.revision < revision:  # the feed is behind the snapshot: catch up
                    await self._sync_locked(revision)
                if not await self._bring_up(cache, revision):
                    return
                self.cache = cache
            log.info("%s: cached, %d resources at revision %s", self.collection, len(cache),
                     self.revision)
            self._ensure_poller()
        except (StorageError, TimeoutError) as exc:  # Gone too: the next read tries again
            log.warning("%s: cannot fill the cache now (%s); served from storage",
                        self.collection, exc)
            self._fill_after = time.monotonic() + 1.0
        finally:
            self._filling = None

    async def _bring_up(self, cache: KindObjects, revision: int) -> bool:
        """Apply to a fresh `cache` (at `revision`) what the feed applied since."""
        assert self.revision is not None
        if revision >= self.ring_floor:
            for record in self.ring:
                if record.revision > revision:
                    cache.apply(record.change)
            return True
        after = revision
        while after < self.revision:  # older than the ring: from the log
            batch = await self.storage.changes(self.collection, after, _BATCH)
            for change in batch:
                if change.revision <= self.revision:
                    cache.apply(change)
            if not batch:
                return False
            after = batch[-1].revision
        return True

    # -- the poller ----------------------------------------------------------------------

    def _ensure_poller(self) -> None:
        if self._poller is None and not self._closed:
            self._poller = asyncio.create_task(self._poll(),
                                               name=f"fabrica.feed.{self.collection}")

    def _wanted(self) -> bool:
        recently = time.monotonic() - self._last_read < _IDLE_AFTER
        return bool(self.watchers) or (self.cache is not None and recently)

    async def _poll(self) -> None:
        try:
            while not self._closed and self._wanted():
                # Not wait_for: on Python 3.11 a wake-up in the same turn as a cancel made
                # it swallow the cancel, and a stop waited out a whole poll interval.
                try:
                    async with asyncio.timeout(self.settings.poll_interval):
                        await self._wake.wait()
                    await asyncio.sleep(_WAKE_GAP)  # let a burst of writes land together
                except TimeoutError:
                    pass
                self._wake.clear()
                try:
                    await self.sync()
                except (StorageError, OSError) as exc:
                    log.warning("%s: reading the change log failed: %s", self.collection, exc)
                    await asyncio.sleep(self.settings.poll_interval)
        finally:
            self._poller = None

    async def close(self) -> None:
        """End every watch and stop the background work."""
        self._closed = True
        self._wake.set()
        for watcher in list(self.watchers):
            watcher.close()
        # Let a storage call in flight finish rather than cancel it: a database driver
        # cancelled mid-query may leave its connection behind, unclosed.
        tasks = {task for task in (self._poller, self._filling) if task is not None}
        if tasks:
            _, pending = await asyncio.wait(tasks, timeout=_CLOSE_WAIT)
            for task in pending:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)


def _unbounded_latest(storage: Storage) -> Callable[[str], Awaitable[int]]:
    """`storage.latest`, called before every cached read. The file backend answers it
    inline on the event loop (a stat or two, no thread hop), where a time bound
    (`with_timeout`) cannot interrupt anything and its task would cost a third of a cached
    get: call the backend itself. Other backends keep their bound."""
    inner = getattr(storage, "inner", None)
    if storage.name == "file" and inner is not None:
        return inner.latest  # type: ignore[no-any-return]
    return storage.latest


def _compact(doc: Document) -> bytes:
    """A document as compact JSON: a tenth of its parsed size, kept until sent."""
    return json.dumps(doc, separators=(",", ":"), ensure_ascii=False).encode()
