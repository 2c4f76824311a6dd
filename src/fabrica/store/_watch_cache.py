"""`WatchCache`: watches (SPEC section 8) and a per-kind cache that answers gets and lists
from memory while it is current, as the Kubernetes apiserver's watch cache does.

One `KindFeed` per kind follows the storage's change log (`_watch_feed.py`), keeps the
kind's objects when it is cached (`_watch_objects.py`) and feeds its watchers
(`_watchers.py`). The store's own writes wake the feed; other processes' writes arrive
through the log, polled while anyone watches or reads the kind.

Bounds, each a keyword here and an option of ``serve``:

- `max_objects` (``--watch-cache-size``): resources per kind kept in memory; a kind with
  more is served from storage (its watches still work, from the log);
- `queue_size`: changes a watcher may have waiting; one further behind ends with ERROR 410;
- `ring_size`: recent changes kept per kind for watches resuming from a recent
  resourceVersion (older ones are read from the storage's log, whose length is the
  storage's ``change_history``, ``--watch-history``);
- `memory` (``--watch-memory``): bytes all watchers together may hold for their clients
  (chunks handed out and not yet read, the initial objects of an uncached kind); past it
  the watcher holding the most ends with ERROR 410 (`_watch_memory.py`).
- `version_wait`: how long a watch from a resourceVersion the log has not reached waits for
  it before `ResourceVersionTooLarge` (HTTP 504).
"""

from __future__ import annotations

import builtins
from collections.abc import Callable, Iterable
from functools import partial
from typing import Any

from ..resource import Resource, Selector
from ..storage import Document, NotFound, Storage
from ._changes import Change
from ._store import read_document
from ._watch_feed import FeedSettings, KindFeed, ResourceVersionTooLarge
from ._watch_memory import DEFAULT_WATCH_MEMORY, WatchMemory
from ._watch_objects import Entry
from ._watchers import Watcher

__all__ = ["DEFAULT_CACHE_SIZE", "DEFAULT_QUEUE_SIZE", "DEFAULT_RING_SIZE",
           "DEFAULT_VERSION_WAIT", "DEFAULT_WATCH_MEMORY", "CachedRead", "ResourceVersionTooLarge",
           "WatchCache"]

AnyResource = Resource[Any, Any]
DEFAULT_CACHE_SIZE = 100_000
DEFAULT_QUEUE_SIZE = 10_000
DEFAULT_RING_SIZE = 4096
DEFAULT_VERSION_WAIT = 3.0  # as the Kubernetes watch cache waits for a fresh enough state


class CachedRead:
    """One resource as read (from memory or storage): its version and its wire JSON."""

    __slots__ = ("_entry", "_feed")

    def __init__(self, entry: Entry, feed: KindFeed) -> None:
        self._entry = entry
        self._feed = feed

    @property
    def resource_version(self) -> str:
        return self._entry.resource_version

    @property
    def name(self) -> str:
        return self._entry.name

    def wire(self, api_version: str) -> bytes:
        return self._feed.wire(self._entry, api_version)


class WatchCache:
    """Watches and cached reads of `kinds` over `storage`, kept current by the change log.

    `encode` renders a stored document in an API version, cached (`ResourceStore.wire`);
    `render` the same uncached (what the cache keeps is not kept twice).
    """

    def __init__(
        self,
        storage: Storage,
        kinds: Iterable[type[AnyResource]],
        *,
        encode: Callable[[type[AnyResource], Document, str], bytes],
        render: Callable[[type[AnyResource], Document, str], bytes],
        max_objects: int = DEFAULT_CACHE_SIZE,
        queue_size: int = DEFAULT_QUEUE_SIZE,
        ring_size: int = DEFAULT_RING_SIZE,
        poll_interval: float = 0.2,
        memory: int = DEFAULT_WATCH_MEMORY,
        version_wait: float = DEFAULT_VERSION_WAIT,
    ) -> None:
        self.storage = storage
        self.memory = WatchMemory(memory)
        self.settings = FeedSettings(max_objects=max_objects, ring_size=ring_size,
                                     queue_size=queue_size, poll_interval=poll_interval,
                                     memory=self.memory, version_wait=version_wait)
        self._feeds: dict[str, KindFeed] = {}
        for cls in kinds:
            self._feeds[cls.resource_info.plural] = KindFeed(
                cls, storage, self.settings, encode=partial(encode, cls),
                render=partial(render, cls))

    @property
    def watchers(self) -> int:
        """How many watches are open."""
        return sum(len(feed.watchers) for feed in self._feeds.values())

    def feed(self, cls: type[AnyResource]) -> KindFeed:
        return self._feeds[cls.resource_info.plural]

    async def on_change(self, change: Change) -> None:
        """The store's change listener: a write here wakes its kind's feed."""
        feed = self._feeds.get(change.resource.resource_info.plural)
        if feed is not None:
            feed.wake()

    async def get(self, cls: type[AnyResource], id: str) -> CachedRead:
        """By uid or name, as `ResourceStore.get_document`; `NotFound` when there is none."""
        feed = self.feed(cls)
        info = cls.resource_info
        cache = await feed.current()
        if cache is None:
            return CachedRead(Entry(await read_document(self.storage, cls, id)), feed)
        entry = cache.find(id, info.is_uid(id))
        if entry is None:
            raise NotFound(info.plural, id)
        return CachedRead(entry, feed)

    async def list(
        self,
        cls: type[AnyResource],
        *,
        selector: Selector | None = None,
        limit: int | None = None,
        after: str | None = None,
    ) -> tuple[int, builtins.list[CachedRead]]:
        """(revision, the page as of exactly that revision): a watch from the revision
        continues the list with no change missed or repeated."""
        feed = self.feed(cls)
        cache = await feed.current()
        if cache is not None:
            assert feed.revision is not None
            return feed.revision, [CachedRead(e, feed)
                                   for e in cache.page(selector, limit, after)]
        revision, docs = await feed.snapshot(selector=selector, limit=limit, after=after)
        return revision, [CachedRead(Entry(doc), feed) for doc in docs]

    async def watch(
        self,
        cls: type[AnyResource],
        *,
        resource_version: int | None = None,
        selector: Selector | None = None,
        api_version: str | None = None,
    ) -> Watcher:
        """A watch of `cls`: every change after `resource_version`, or (None) every current
        match as ADDED and then every change. A `resource_version` older than the storage's
        change log gets a watcher that ends with ERROR 410; one the log has not reached
        within `version_wait` seconds raises `ResourceVersionTooLarge`."""
        return await self.feed(cls).watch(
            resource_version=resource_version, selector=selector,
            api_version=api_version or cls.resource_info.version)

    async def close(self) -> None:
        """End every watch (so a server stops without waiting for them) and the pollers."""
        for feed in self._feeds.values():
            await feed.close()
