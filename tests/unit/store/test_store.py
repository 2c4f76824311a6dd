"""`ResourceStore` on its own, over a real `FileStorage`: the one write path (`modify`,
`delete`), its preconditions and retries, what it tells its listeners, and what it reads."""

from __future__ import annotations

import asyncio

import pytest

from fabrica import Model, Resource
from fabrica.storage import Conflict, FileStorage, NotFound
from fabrica.store import Change, ResourceStore
from tests._support.app import Device, DeviceSpec
from tests._support.storage import CountingStorage

WEB = DeviceSpec(type="server", ip_address="10.0.0.1")


class PolicySpec(Model):
    rules: list[str] = []


class PolicyStatus(Model):
    phase: str = ""
    version: str = ""


class Policy(Resource[PolicySpec, PolicyStatus], prefix="pol", versioning=True):
    pass


@pytest.fixture
async def storage(tmp_path):
    storage = CountingStorage(tmp_path / "data")
    yield storage
    await storage.close()


@pytest.fixture
def store(storage):
    return ResourceStore(storage, [Device, Policy])


@pytest.fixture
def changes(store):
    seen: list[Change] = []

    async def listen(change: Change) -> None:
        seen.append(change)

    store.add_listener(listen)
    return seen


def with_port(port: int):
    def change(current):
        return current.model_copy(update={"spec": current.spec.model_copy(update={"port": port})})
    return change


async def test_modify_writes_the_change_and_tells_the_listeners(store, changes):
    created = await store.create(Device, "web", WEB)
    updated = await store.modify(Device, "web", with_port(8443))
    assert updated.spec.port == 8443 and updated.metadata.generation == 2
    assert updated.metadata.resource_version != created.metadata.resource_version
    assert (await store.get(Device, created.uid)) == updated
    relabelled = await store.modify(Device, created.uid, lambda c: c.model_copy(
        update={"metadata": c.metadata.model_copy(update={"labels": {"app": "web"}})}))
    assert relabelled.metadata.generation == 2  # metadata only: generation stays
    assert [(c.action, c.update_type) for c in changes] == [
        ("created", None), ("updated", "spec"), ("updated", "metadata")]
    assert changes[1].previous == created


async def test_one_read_per_write(store, storage):
    await store.create(Device, "web", WEB)
    created = await store.get(Device, "web")
    storage.calls.clear()
    await store.modify(Device, created.uid, with_port(1))
    assert storage.calls == ["get", "update"]
    storage.calls.clear()
    await store.modify(Device, "web", with_port(2))  # by name: the name lookup is the read
    assert storage.calls == ["get_by_name", "update"]


async def test_nothing_to_do_writes_nothing(store, storage, changes):
    created = await store.create(Device, "web", WEB)
    storage.calls.clear()
    same = await store.modify(Device, "web", lambda current: None)
    assert same == created and storage.calls == ["get_by_name"] and len(changes) == 1


async def test_a_refused_precondition_writes_nothing(store):
    created = await store.create(Device, "web", WEB)

    class Refused(Exception):
        pass

    def precondition(current):
        raise Refused(current.metadata.resource_version)

    with pytest.raises(Refused):
        await store.modify(Device, "web", with_port(1), precondition=precondition)
    with pytest.raises(Refused):
        await store.delete(Device, "web", precondition=precondition)
    assert await store.get(Device, "web") == created


async def test_a_stale_expected_version_is_a_conflict_at_once(store):
    await store.create(Device, "web", WEB)
    calls = []

    def change(current):
        calls.append(current)
        return current

    with pytest.raises(Conflict):
        await store.modify(Device, "web", change, expected_version="0")
    with pytest.raises(Conflict):
        await store.delete(Device, "web", expected_version="0")
    assert calls == []
    await store.get(Device, "web")


async def test_another_process_writing_first_means_read_and_try_again(store, tmp_path):
    """A second store over the same data dir is another process: compare-and-swap fails,
    and `modify` re-reads and applies its change to the other writer's state."""
    other = ResourceStore(FileStorage(tmp_path / "data"), [Device])
    await store.create(Device, "web", WEB)
    seen = []

    async def interfere_once():
        current = await other.get(Device, "web")
        tags = {**current.spec.tags, "other": "yes"}
        await other.update(current.model_copy(
            update={"spec": current.spec.model_copy(update={"tags": tags})}))

    def change(current):
        seen.append(current.metadata.resource_version)
        return with_port(9000)(current)

    real_update = store.storage.update

    async def update_after_interference(*args, **kwargs):
        if len(seen) == 1:
            await interfere_once()
        return await real_update(*args, **kwargs)

    store.storage.update = update_after_interference  # type: ignore[method-assign]
    result = await store.modify(Device, "web", change)
    assert len(seen) == 2 and seen[0] != seen[1]
    assert result.spec.port == 9000 and result.spec.tags == {"other": "yes"}
    await other.storage.close()


async def test_retries_are_bounded(store, tmp_path):
    other = ResourceStore(FileStorage(tmp_path / "data"), [Device])
    await store.create(Device, "web", WEB)
    calls = 0
    real_update = store.storage.update

    async def always_beaten(*args, **kwargs):
        current = await other.get(Device, "web")
        await other.update(current)  # bumps the resourceVersion
        return await real_update(*args, **kwargs)

    def change(current):
        nonlocal calls
        calls += 1
        return with_port(calls)(current)

    store.storage.update = always_beaten  # type: ignore[method-assign]
    with pytest.raises(Conflict):
        await store.modify(Device, "web", change, attempts=3)
    assert calls == 3
    await other.storage.close()


async def test_writers_in_one_process_queue_instead_of_conflicting(store):
    await store.create(Device, "web", WEB)
    calls = 0

    def increment(current):
        nonlocal calls
        calls += 1
        return with_port(current.spec.port + 1)(current)

    await asyncio.gather(*(store.modify(Device, "web", increment) for _ in range(20)))
    assert (await store.get(Device, "web")).spec.port == 443 + 20
    assert calls == 20  # no conflict, no retry: each read saw the previous write


async def test_status_part_leaves_spec_and_generation_alone(store, changes):
    created = await store.create(Policy, "p", PolicySpec(rules=["a"]))

    def change(current):
        return current.model_copy(update={
            "spec": PolicySpec(rules=["ignored"]),
            "status": PolicyStatus(phase="Ready", version="v99")})

    updated = await store.modify(Policy, "p", change, part="status")
    assert updated.spec == created.spec and updated.metadata.generation == 1
    assert updated.status == PolicyStatus(phase="Ready", version="v1")  # spec version stays
    assert changes[-1].update_type == "status"
    respec = await store.modify(Policy, "p", lambda c: c.model_copy(
        update={"spec": PolicySpec(rules=["b"])}))
    assert respec.status.version == "v2" and respec.status.phase == "Ready"
    assert [v["versionId"] for v in await store.list_versions(Policy, "p")] == ["v1", "v2"]


async def test_update_is_compare_and_swap_on_the_callers_object(store):
    created = await store.create(Device, "web", WEB)
    await store.update(created)
    with pytest.raises(Conflict):
        await store.update(created)  # stale now
    with pytest.raises(Conflict):
        await store.update_status(created)


async def test_delete_with_finalizers_marks_and_the_last_removal_deletes(store, changes):
    await store.create(Device, "db", WEB, finalizers=["example.com/a", "example.com/b"])
    marked = await store.delete(Device, "db")
    assert marked.metadata.deletion_timestamp is not None
    assert await store.delete(Device, "db") == marked  # marking twice changes nothing

    def without(finalizer):
        def change(current):
            current.metadata.finalizers = [f for f in current.metadata.finalizers
                                           if f != finalizer]
            return current
        return change

    await store.modify(Device, "db", without("example.com/a"))
    await store.get(Device, "db")
    await store.modify(Device, "db", without("example.com/b"))
    with pytest.raises(NotFound):
        await store.get(Device, "db")
    assert [c.action for c in changes][-2:] == ["updated", "deleted"]


async def test_unknown_ids_are_not_found(store):
    with pytest.raises(NotFound):
        await store.modify(Device, "nope", with_port(1))
    with pytest.raises(NotFound):
        await store.delete(Device, "dev-0000000a")
