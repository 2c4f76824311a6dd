"""`GarbageCollector.wait_idle` waits for a collection in progress, not only a queued one."""

from __future__ import annotations

import asyncio
from typing import Any

from fabrica import Model, Resource
from fabrica.storage import FileStorage
from fabrica.store import GarbageCollector, ResourceStore


class Crate(Resource[Model, Model], prefix="crate"):
    pass


class Jar(Resource[Model, Model], prefix="jar"):
    pass


async def test_wait_idle_returns_only_after_the_dependents_are_gone(tmp_path):
    store = ResourceStore(FileStorage(tmp_path), [Crate, Jar])
    collector = GarbageCollector(store)
    await collector.start()
    try:
        crate = await store.create(Crate, "c1", Model())
        await store.create(Jar, "j1", Model(), owner_references=[crate.owner_reference()])
        listing = store.storage.list  # what the collector reads its candidates from
        collecting = asyncio.Event()

        async def slow_list(*args: Any, **kwargs: Any) -> Any:
            collecting.set()
            await asyncio.sleep(0.2)  # the collection is in flight meanwhile
            return await listing(*args, **kwargs)

        store.storage.list = slow_list  # type: ignore[method-assign]
        await store.delete(Crate, crate.uid)
        await asyncio.wait_for(collecting.wait(), 10)  # the owner is off the collector's queue
        await collector.wait_idle()
        store.storage.list = listing  # type: ignore[method-assign]
        assert await store.list(Jar) == []
    finally:
        await collector.stop()
