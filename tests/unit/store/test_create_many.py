"""`create_many` (SPEC section 11): many children of one kind in one storage write, each
validated, admitted, given its unique keys, its change-log entry and its events (on SQL
through the outbox, in the same transaction); an invalid child stops the call before
anything is written, named by index and name."""

from __future__ import annotations

from typing import Annotated

import pytest

from fabrica import Hooks, Model, Reject, Resource, Unique, WriteContext
from fabrica.reconcile import ReconcileClient
from fabrica.storage import AlreadyExists, FileStorage, OutboxMessage, SQLStorage
from fabrica.store import Change, CreateManyError, ResourceStore, prepare_unique
from tests._support.sqldb import database, migrate


class PortSpec(Model):
    serial: Annotated[str, Unique()] = ""
    speed: int = 0


class PortStatus(Model):
    phase: str = ""
    version: str = ""


class Port(Resource[PortSpec, PortStatus], prefix="prt", versioning=True):
    pass


class SwitchSpec(Model):
    ports: int = 0


class Switch(Resource[SwitchSpec, PortStatus], prefix="swi"):
    pass


class PortHooks(Hooks[Port]):
    async def admit(self, ctx: WriteContext, new: Port, old: Port | None) -> Port | None:
        if new.spec.speed < 0:
            raise Reject(422, "speed must not be negative", field="spec.speed")
        new.metadata.labels["admitted"] = "yes"
        return new


@pytest.fixture(params=["file", "sqlite", "postgresql"])
def url(request, tmp_path):
    """None for the file backend, else a fresh migrated database."""
    if request.param == "file":
        yield None
        return
    with database(request.param, tmp_path) as url:
        migrate(url)
        yield url


@pytest.fixture
async def store(url, tmp_path):
    storage = FileStorage(tmp_path / "data") if url is None else SQLStorage(url)
    await prepare_unique(storage, [Port])
    store = ResourceStore(storage, [Port, Switch])
    store.use_hooks([PortHooks])
    yield store
    await storage.close()


def ports(client: ReconcileClient, owner: Switch, count: int, **spec: object) -> list:
    return [client.new(Port, f"p-{n}", {"serial": f"S{n}", "speed": 10, **spec},
                       labels={"n": str(n)}, owner=owner) for n in range(count)]


async def test_children_are_created_admitted_logged_and_keyed(store):
    client = ReconcileClient(store)
    switch = await client.create(Switch, "sw", {"ports": 3})
    heard: list[Change] = []

    async def listen(change: Change) -> None:
        heard.append(change)

    store.add_listener(listen)
    start = await store.storage.latest("ports")
    created = await client.create_many(ports(client, switch, 3))
    assert [p.name for p in created] == ["p-0", "p-1", "p-2"]
    got = await client.get(Port, "p-2")
    assert got.metadata.labels == {"n": "2", "admitted": "yes"}
    assert got.metadata.owner_references[0].uid == switch.uid
    assert got.status.version == "v1" and got.metadata.resource_version
    assert [v["versionId"] for v in await store.list_versions(Port, "p-2")] == ["v1"]
    log = await store.storage.changes("ports", start)
    assert sorted(c.document["metadata"]["name"] for c in log) == ["p-0", "p-1", "p-2"]
    assert [c.resource.name for c in heard] == ["p-0", "p-1", "p-2"]
    with pytest.raises(AlreadyExists) as refused:  # the serial is held
        await client.create(Port, "late", {"serial": "S1"})
    assert refused.value.holder == created[1].uid


@pytest.mark.parametrize("bad, index, why", [
    ({"speed": -1}, 1, "speed must not be negative"),
    ({"speed": "fast"}, 1, "speed"),
    ({"serial": "S0"}, 1, "spec.serial"),
])
async def test_one_bad_child_creates_none_and_is_named(store, bad, index, why):
    client = ReconcileClient(store)
    switch = await client.create(Switch, "sw", {"ports": 3})
    children = ports(client, switch, 3)
    children[index] = client.new(Port, children[index].name, {"serial": "S9", **bad},
                                 owner=switch)
    with pytest.raises(CreateManyError) as refused:
        await client.create_many(children)
    assert (refused.value.index, refused.value.name) == (index, f"p-{index}")
    assert why in str(refused.value)
    assert await client.list(Port) == []


async def test_a_taken_name_creates_none_and_is_named(store):
    client = ReconcileClient(store)
    switch = await client.create(Switch, "sw", {"ports": 3})
    await client.create(Port, "p-2", {"serial": "other"})
    with pytest.raises(CreateManyError) as refused:
        await client.create_many(ports(client, switch, 3))
    assert (refused.value.index, refused.value.name) == (2, "p-2")
    assert isinstance(refused.value.error, AlreadyExists)
    assert [p.name for p in await client.list(Port)] == ["p-2"]


async def test_a_missing_owner_is_named(store):
    client = ReconcileClient(store)
    switch = await client.create(Switch, "sw", {"ports": 3})
    await client.delete(Switch, "sw")
    with pytest.raises(CreateManyError) as refused:
        await client.create_many(ports(client, switch, 2))
    assert refused.value.index == 0
    assert refused.value.error.field == "metadata.ownerReferences.0.uid"  # type: ignore


async def test_on_sql_the_events_are_recorded_in_the_outbox(store):
    if not store.use_outbox(lambda change: [OutboxMessage(
            "s", f"{change.action}-{change.resource.name}", "{}")]):
        pytest.skip("files have no outbox")
    client = ReconcileClient(store)
    switch = await client.create(Switch, "sw", {"ports": 2})
    await client.create_many(ports(client, switch, 2))
    ids = [e.id for e in await store.storage.outbox_pending()]  # type: ignore[attr-defined]
    assert ids == ["created-sw", "created-p-0", "created-p-1"]


async def test_owners_are_read_once_per_kind_and_the_first_missing_one_is_named(
        store, monkeypatch):
    # One read per owner made a rack's 5,376 nodes (672 blades) wait a second of round trips.
    client = ReconcileClient(store)
    switches = [await client.create(Switch, f"sw-{n}", {"ports": 8}) for n in range(4)]
    reads = []
    for name in ("get", "get_many"):
        real = getattr(store.storage, name)
        monkeypatch.setattr(store.storage, name, lambda *a, real=real, name=name: (
            reads.append(name) or real(*a)))
    children = [client.new(Port, f"p-{n}", {"serial": f"S{n}"}, owner=switches[n % 4])
                for n in range(40)]
    assert len(await client.create_many(children)) == 40
    assert reads == ["get_many"]
    await client.delete(Switch, "sw-3")
    await client.delete(Switch, "sw-2")
    more = [client.new(Port, f"q-{n}", {"serial": f"T{n}"}, owner=switches[n % 4])
            for n in range(8)]
    with pytest.raises(CreateManyError) as refused:
        await client.create_many(more)
    assert (refused.value.index, refused.value.name) == (2, "q-2")
    assert refused.value.error.field == "metadata.ownerReferences.0.uid"  # type: ignore
