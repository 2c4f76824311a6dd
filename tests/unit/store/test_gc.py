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


async def test_the_start_sweep_reads_documents_and_loads_only_orphans(store, monkeypatch):
    # The sweep used to validate every stored resource as an object: on a rack of 11,466
    # dependents that held up the first reads after a start for seconds.
    root = await store.create(Device, "root", WEB)
    for n in range(150):  # more than one page would be, were pages 100
        await store.create(Device, f"kept-{n:03}", WEB, owner_references=[root.owner_reference()])
    gone = await store.create(Device, "gone", WEB)
    await store.create(Device, "orphan", WEB, owner_references=[gone.owner_reference()])
    await store.storage.delete("devices", gone.uid)
    monkeypatch.setattr("fabrica.store._gc._PAGE", 100)
    loads = []
    real_load = store._load
    monkeypatch.setattr(store, "_load", lambda cls, doc: loads.append(doc) or real_load(cls, doc))
    await GarbageCollector(store).sweep()
    assert not await exists(store, "orphan")
    assert await exists(store, "kept-149")
    assert len(loads) <= 3  # the orphan, read again before it goes: not the 152 others


async def test_a_dependent_given_a_live_owner_after_it_was_found_orphaned_stays(store):
    gone = await store.create(Device, "gone", WEB)
    dependent = await store.create(Device, "dependent", WEB,
                                   owner_references=[gone.owner_reference()])
    await store.storage.delete("devices", gone.uid)
    collector = GarbageCollector(store)
    orphans = await collector._orphans()
    assert [o.uid for o in orphans] == [dependent.uid]
    new_owner = await store.create(Device, "new-owner", WEB)

    def adopt(current):
        current.metadata.owner_references = [new_owner.owner_reference()]
        return current

    await store.modify(Device, "dependent", adopt)  # between the listing and the delete
    assert await collector._delete_if_orphaned(orphans[0], "orphan_at_start", set()) == 0
    assert await exists(store, "dependent")


async def test_an_owner_that_appears_after_its_kind_was_read_is_not_taken_for_gone(store):
    owner = await store.create(Device, "owner", WEB)
    dependent = await store.create(Device, "dependent", WEB,
                                   owner_references=[owner.owner_reference()])
    collector = GarbageCollector(store)
    # As if the owner's page had been read before the owner was written:
    from fabrica.store._gc import _Dependent

    found = _Dependent(Device, dependent.uid, "dependent", ((owner.kind, owner.uid),))
    assert await collector._delete_if_orphaned(found, "orphan_at_start", set()) == 0
    assert await exists(store, "dependent")


async def test_the_recheck_of_new_dependents_reads_each_owner_once(store, monkeypatch):
    # A rack's 5,376 new nodes name 672 blades: the recheck read the blade of every node,
    # one storage read per dependent, competing with the reconciler for the database.
    owners = [await store.create(Device, f"owner-{n}", WEB) for n in range(3)]
    gone = await store.create(Device, "gone", WEB)
    dependents = [await store.create(Device, f"dep-{n:02}", WEB,
                                     owner_references=[owners[n % 3].owner_reference()])
                  for n in range(30)]
    orphan = await store.create(Device, "orphan", WEB, owner_references=[gone.owner_reference()])
    await store.storage.delete("devices", gone.uid)  # the owner went before its dependent
    reads = []
    real_get, real_get_many = store.storage.get, store.storage.get_many
    monkeypatch.setattr(store.storage, "get",
                        lambda collection, uid: reads.append([uid]) or real_get(collection, uid))
    monkeypatch.setattr(store.storage, "get_many", lambda collection, uids: reads.append(
        list(uids)) or real_get_many(collection, uids))
    await GarbageCollector(store)._recheck([*dependents, orphan])
    assert not await exists(store, "orphan")
    assert await exists(store, "dep-29")
    assert reads[0] == sorted([o.uid for o in owners] + [gone.uid])  # one read for all
    assert all(r == [orphan.uid] for r in reads[1:])  # the orphan, read again as it goes
