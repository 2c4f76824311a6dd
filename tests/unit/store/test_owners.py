"""No owner reference dangles: a write that adds an owner of a kind not served, or one that
does not exist, is refused on every write path; an owner deleted while its dependent's
write is in flight is caught right after the write, not at the next restart."""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import pytest

from fabrica.resource import OwnerReference
from fabrica.storage import FileStorage, NotFound
from fabrica.store import GarbageCollector, OwnerReferenceError, ResourceStore
from tests._support.app import Device, DeviceSpec
from tests._support.wait import eventually

WEB = DeviceSpec(type="server", ip_address="10.0.0.1")


class HeldStorage(FileStorage):
    """The real file backend; a create of the name `hold` waits for `release` first, as a
    write in flight in another process does."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.hold = ""
        self.arrived = asyncio.Event()
        self.release = asyncio.Event()

    async def create(self, collection: str, doc: Any, *args: Any, **kwargs: Any) -> Any:
        if doc["metadata"]["name"] == self.hold:
            self.arrived.set()
            await self.release.wait()
        return await super().create(collection, doc, *args, **kwargs)


@pytest.fixture
async def store(tmp_path):
    storage = HeldStorage(tmp_path / "data")
    yield ResourceStore(storage, [Device])
    await storage.close()


async def exists(store: ResourceStore, name: str) -> bool:
    try:
        await store.get(Device, name)
    except NotFound:
        return False
    return True


def ref(kind: str = "Device", uid: str = "dev-0000abcd") -> OwnerReference:
    return OwnerReference(kind=kind, name="owner", uid=uid)


async def test_an_owner_that_does_not_exist_is_refused_at_create(store):
    with pytest.raises(OwnerReferenceError) as refused:
        await store.create(Device, "child", WEB, owner_references=[ref()])
    assert refused.value.part == "uid"
    assert refused.value.field == "metadata.ownerReferences.0.uid"
    assert "dev-0000abcd does not exist" in str(refused.value)
    assert not await exists(store, "child")


async def test_an_owner_of_a_kind_not_served_is_refused(store):
    owner = await store.create(Device, "owner", WEB)
    refs = [owner.owner_reference(), ref(kind="Rack", uid="rack-0000abcd")]
    with pytest.raises(OwnerReferenceError) as refused:
        await store.create(Device, "child", WEB, owner_references=refs)
    assert refused.value.part == "kind"
    assert refused.value.field == "metadata.ownerReferences.1.kind"
    assert not await exists(store, "child")


async def test_a_uid_of_another_kind_or_a_name_is_no_owner(store):
    owner = await store.create(Device, "owner", WEB)
    for uid in ("owner", "rack-" + owner.uid[4:]):
        with pytest.raises(OwnerReferenceError, match="does not exist"):
            await store.create(Device, "child", WEB, owner_references=[ref(uid=uid)])


async def test_an_update_may_not_add_a_dangling_owner_but_keeps_an_old_one(store):
    owner = await store.create(Device, "owner", WEB)
    child = await store.create(Device, "child", WEB, owner_references=[owner.owner_reference()],
                               finalizers=["example.com/hold"])

    def add_dangling(current):
        current.metadata.owner_references = [*current.metadata.owner_references, ref()]
        return current

    with pytest.raises(OwnerReferenceError) as refused:
        await store.modify(Device, "child", add_dangling)
    assert refused.value.field == "metadata.ownerReferences.1.uid"
    await store.storage.delete("devices", owner.uid)  # the owner goes; no collector runs

    def release(current):  # the reference that dangles now was valid when written
        current.metadata.finalizers = []
        return current

    released = await store.modify(Device, "child", release)
    assert released.metadata.owner_references == child.metadata.owner_references


async def test_an_owner_deleted_while_its_dependent_is_written_is_collected_at_once(store):
    collector = GarbageCollector(store)
    await collector.start()
    try:
        owner = await store.create(Device, "owner", WEB)
        store.storage.hold = "child"
        writing = asyncio.create_task(store.create(
            Device, "child", WEB, owner_references=[owner.owner_reference()]))
        await store.storage.arrived.wait()  # checked: the owner exists; not yet written
        await store.delete(Device, "owner")
        await collector.wait_idle()  # the owner's wave found no dependent: none was there
        store.storage.release.set()
        await writing

        async def child_gone() -> bool:
            return not await exists(store, "child")
        await eventually(child_gone)
        await collector.wait_idle()
        assert collector.counts == {"owner_deleted": 0, "owner_gone_at_write": 1,
                                    "orphan_at_start": 0}
    finally:
        await collector.stop()


async def test_a_dependent_with_a_live_owner_is_left_alone_after_its_write(store):
    collector = GarbageCollector(store)
    await collector.start()
    try:
        owner = await store.create(Device, "owner", WEB)
        await store.create(Device, "child", WEB, owner_references=[owner.owner_reference()])
        await collector.wait_idle()
        assert await exists(store, "child")
        assert collector.deleted == 0
    finally:
        await collector.stop()


async def test_the_start_sweep_says_what_it_removes(store, caplog):
    owner = await store.create(Device, "owner", WEB)
    child = await store.create(Device, "child", WEB, owner_references=[owner.owner_reference()])
    await store.storage.delete("devices", owner.uid)  # a crash cut the cascade short
    collector = GarbageCollector(store)
    with caplog.at_level(logging.WARNING, "fabrica.gc"):
        await collector.sweep()
    assert not await exists(store, "child")
    assert collector.counts["orphan_at_start"] == 1
    assert f"deleted Device child ({child.uid})" in caplog.text
    assert "removed 1 orphaned dependents at start" in caplog.text


async def test_the_sweep_keeps_a_dependent_whose_owner_kind_is_not_served_any_more(
        tmp_path, caplog):
    """A kind removed from the service: whether its resources exist cannot be told, so
    their dependents are kept (and said so), not deleted at the next start."""
    from tests.unit.store.test_gc_wait_idle import Crate

    storage = FileStorage(tmp_path / "both")
    before = ResourceStore(storage, [Device, Crate])
    crate = await before.create(Crate, "c1", Crate.resource_info.spec_type())
    await before.create(Device, "kept", WEB, owner_references=[crate.owner_reference()])
    after = ResourceStore(storage, [Device])  # the next version serves Device only
    collector = GarbageCollector(after)
    with caplog.at_level(logging.WARNING, "fabrica.gc"):
        await collector.sweep()
    assert await exists(after, "kept")
    assert "1 dependents whose owner is of a kind not served here" in caplog.text
    await storage.close()
