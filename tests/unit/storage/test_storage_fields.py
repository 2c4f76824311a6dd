"""Field selectors in the `Storage` contract, on every backend: after `prepare_fields`, a
list by a field answers what a scan would, through creates, updates, deletes and paging;
several processes preparing the same new field at once (a first start with several
workers) all start."""

from __future__ import annotations

import asyncio

from fabrica.resource import Selector, parse_field_selector
from fabrica.storage import BulkItem
from tests._support.storage import doc, uid

FIELDS = ("metadata.name", "status.phase", "spec.rack", "spec.slot")


def by(text: str) -> Selector:
    return Selector(fields=parse_field_selector(text, FIELDS))


async def names(storage, text: str, **page) -> list[str]:
    return [d["metadata"]["name"] for d in await storage.list("bmcs", selector=by(text),
                                                               **page)]


async def test_lists_by_fields_follow_every_write(storage):
    await storage.prepare_fields("bmcs", FIELDS)
    for n in range(6):
        await storage.create("bmcs", doc(f"b{n}", uid(n), rack=f"r{n % 2}", slot=n))
    assert await names(storage, "spec.rack=r1") == ["b1", "b3", "b5"]
    assert await names(storage, "spec.slot=4") == ["b4"]  # a number: its JSON text
    assert await names(storage, "spec.rack=r1", limit=2) == ["b1", "b3"]
    assert await names(storage, "spec.rack=r1", limit=2, after="b3") == ["b5"]
    assert await names(storage, "spec.rack!=r1,metadata.name!=b0") == ["b2", "b4"]
    assert await names(storage, "metadata.name=b2,spec.rack=r0") == ["b2"]
    assert await names(storage, "metadata.name=b2,spec.rack=r1") == []
    current = await storage.get("bmcs", uid(1))
    moved = {**current, "spec": {"rack": "r0", "slot": 1}, "status": {"phase": "Ready"}}
    await storage.update("bmcs", moved, current["metadata"]["resourceVersion"])
    await storage.delete("bmcs", uid(5))
    assert await names(storage, "spec.rack=r1") == ["b3"]
    assert await names(storage, "status.phase=Ready") == ["b1"]
    assert await names(storage, "status.phase=") == ["b0", "b2", "b3", "b4"]


async def test_batches_keep_the_field_index(storage):
    """Imports and reconcilers' create_many write in batches (`write_batch`): their
    resources are listed by their fields like any other's."""
    await storage.prepare_fields("bmcs", FIELDS)
    await storage.write_batch("bmcs", [BulkItem(doc(f"b{n}", uid(n), rack=f"r{n % 2}"))
                                       for n in range(4)], mode="create")
    assert await names(storage, "spec.rack=r1") == ["b1", "b3"]
    await storage.write_batch("bmcs", [BulkItem(doc("b1", uid(1), rack="r0")),
                                       BulkItem(doc("b7", uid(7), rack="r1"))], mode="upsert")
    assert await names(storage, "spec.rack=r1") == ["b3", "b7"]
    assert await names(storage, "spec.rack=r0") == ["b0", "b1", "b2"]


async def test_processes_preparing_a_new_field_at_once_all_start(open_backend):
    first = await open_backend()
    await first.write_batch("bmcs", [BulkItem(doc(f"b{n:04d}", uid(n), rack=f"r{n % 5}"))
                                     for n in range(2000)], mode="create")
    others = [await open_backend() for _ in range(3)]
    await asyncio.gather(*(s.prepare_fields("bmcs", FIELDS) for s in [first, *others]))
    for storage in [first, *others]:
        assert len(await names(storage, "spec.rack=r3")) == 400
