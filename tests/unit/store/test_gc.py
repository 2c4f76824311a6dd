"""The garbage collector on its own: dependents of a deleted owner go, wave by wave, through
the store (so their finalizers hold them), and a start sweeps orphans left by a crash."""

from __future__ import annotations

import pytest

from fabrica.storage import FileStorage, NotFound
from fabrica.store import GarbageCollector, ResourceStore
from tests._support.app import Device, DeviceSpec
from tests._support.wait import eventually

WEB = DeviceSpec(type="server", ip_address="10.0.0.1")


@pytest.fixture
async def store(tmp_path):
    storage = FileStorage(tmp_path / "data")
    yield ResourceStore(storage, [Device])
    await storage.close()


@pytest.fixture
async def collector(store):
    collector = GarbageCollector(store)
    await collector.start()
    yield collector
    await collector.stop()


async def exists(store, id) -> bool:
    try:
        await store.get(Device, id)
    except NotFound:
        return False
    return True


async def test_dependents_go_with_their_owner_in_waves(store, collector):
    root = await store.create(Device, "root", WEB)
    child = await store.create(Device, "child", WEB, owner_references=[root.owner_reference()])
    await store.create(Device, "grandchild", WEB, owner_references=[child.owner_reference()])
    await store.create(Device, "bystander", WEB)
    await store.delete(Device, "root")
    await collector.wait_idle()
    assert not await exists(store, "child") and not await exists(store, "grandchild")
    assert await exists(store, "bystander")
    assert collector.deleted == 2


async def test_a_dependent_with_a_finalizer_is_marked_not_removed(store, collector):
    root = await store.create(Device, "root", WEB)
    await store.create(Device, "held", WEB, owner_references=[root.owner_reference()],
                       finalizers=["example.com/hold"])
    await store.delete(Device, "root")
    await collector.wait_idle()
    held = await store.get(Device, "held")
    assert held.metadata.deletion_timestamp is not None

    def release(current):
        current.metadata.finalizers = []
        return current

    await store.modify(Device, "held", release)
    assert not await exists(store, "held")


async def test_start_sweeps_orphans_left_by_a_crash(store):
    root = await store.create(Device, "root", WEB)
    reference = root.owner_reference()
    await store.create(Device, "orphan", WEB, owner_references=[reference])
    await store.create(Device, "alive-owner", WEB)
    await store.storage.delete("devices", root.uid)  # the owner went, nobody collected
    collector = GarbageCollector(store)
    await collector.start()
    try:
        async def orphan_gone() -> bool:  # the sweep runs first thing in the background
            return not await exists(store, "orphan")
        await eventually(orphan_gone)
    finally:
        await collector.stop()
    assert not await exists(store, "orphan") and await exists(store, "alive-owner")


async def test_a_dependent_goes_only_when_all_its_owners_are_gone(store, collector):
    """Kubernetes' rule: with two owners, deleting one leaves the dependent alone."""
    first = await store.create(Device, "first", WEB)
    second = await store.create(Device, "second", WEB)
    await store.create(Device, "shared", WEB, owner_references=[
        first.owner_reference(), second.owner_reference()])
    await store.delete(Device, "first")
    await collector.wait_idle()
    assert await exists(store, "shared")
    await store.delete(Device, "second")
    await collector.wait_idle()
    assert not await exists(store, "shared")
