"""What unread watches cost: the initial objects go out in chunks of about 64 KiB, watches
that start while the kind's cache fills share it instead of each reading the kind, and
all watchers together hold at most the `memory` bound, past which the one holding most
ends with ERROR 410 (and its stream is cut). The server-level figure (peak RSS of a real
process with 200 unread watches) is in tests/e2e/test_watch_memory.py."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import pytest

from fabrica.storage import FileStorage
from fabrica.store import ResourceStore, WatchCache
from tests._support.app import Device, DeviceSpec

#: About 2 KB of JSON per device.
TAGS = {f"tag{i:02d}": "x" * 40 for i in range(40)}
SPEC = DeviceSpec(type="server", ip_address="10.0.0.1", tags=TAGS)


class ListCounting(FileStorage):
    """The real file backend, counting the full reads of a collection."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.lists = 0

    async def list(self, *args: Any, **kwargs: Any) -> Any:
        self.lists += 1
        return await super().list(*args, **kwargs)


async def open_cache(tmp_path, count: int, **options: Any
                     ) -> tuple[ListCounting, ResourceStore, WatchCache]:
    storage = ListCounting(tmp_path / "data")
    store = ResourceStore(storage, [Device])
    for n in range(count):
        await store.create(Device, f"d{n:03d}", SPEC)
    cache = WatchCache(storage, [Device], encode=store.wire, render=store.render, **options)
    store.add_listener(cache.on_change)
    return storage, store, cache


async def test_initial_objects_go_out_in_chunks_of_about_64_kib(tmp_path):
    storage, _, cache = await open_cache(tmp_path, 160)  # about 380 KB
    try:
        watcher = await cache.watch(Device)
        sizes, names = [], []
        while (lines := await watcher.next(0)):
            sizes.append(sum(map(len, lines)))
            names += [json.loads(line)["object"]["metadata"]["name"] for line in lines]
        assert names == [f"d{n:03d}" for n in range(160)]  # all of them, once, in order
        assert len(sizes) > 5
        assert max(sizes) < 64 * 1024 + 4096  # one object past 64 KiB at most
        watcher.close()
    finally:
        await cache.close()
        await storage.close()


async def test_watches_that_start_while_the_cache_fills_share_it(tmp_path):
    storage, _, cache = await open_cache(tmp_path, 50)
    try:
        watchers = await asyncio.gather(*(cache.watch(Device) for _ in range(20)))
        assert storage.lists == 1  # the cache's fill, not one read of the kind per watch
        for watcher in watchers:
            assert len(await watcher.next(0)) > 0
            watcher.close()
    finally:
        await cache.close()
        await storage.close()


async def test_past_the_bound_the_watcher_holding_most_ends_with_410(tmp_path):
    limit = 300_000  # an uncached kind of ~240 KB: each watch holds its own copy
    storage, _, cache = await open_cache(tmp_path, 100, max_objects=0, memory=limit)
    try:
        first = await cache.watch(Device)
        assert 0 < cache.memory.used <= limit
        others = [await cache.watch(Device) for _ in range(3)]
        assert cache.memory.used <= limit
        assert cache.memory.ended == 3  # room for one: the oldest go first
        lines = await first.next(0)  # the oldest, holding as much as any: ended
        error = json.loads(lines[0])
        assert error["type"] == "ERROR" and error["object"]["code"] == 410
        assert await first.next(0) is None
        async with asyncio.timeout(1):  # and its stream is cut, should it be stuck
            await first.stopped()
        assert json.loads((await others[-1].next(0))[0])["type"] == "ADDED"
        for watcher in others:
            watcher.close()
        assert cache.memory.used == 0  # a closed watcher holds nothing
    finally:
        await cache.close()
        await storage.close()


async def test_the_memory_bound_must_be_positive(tmp_path):
    with pytest.raises(ValueError, match="at least one byte"):
        WatchCache(FileStorage(tmp_path), [Device], encode=lambda *a: b"",
                   render=lambda *a: b"", memory=0)
