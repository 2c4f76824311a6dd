"""`update_status_many`: the status of many resources of one kind in one storage write,
each compare-and-swapped on the version it was read at, admitted and published as by
`update_status`; on SQL one transaction, so a stale one leaves none written."""

from __future__ import annotations

import pytest

from fabrica import Conflict, Hooks, Model, Reject, Resource, WriteContext
from fabrica.reconcile import ReconcileClient
from fabrica.storage import BulkItem, FileStorage, NotFound, OutboxMessage, SQLStorage
from fabrica.store import Change, ResourceStore
from tests._support.sqldb import database, migrate


class BoxSpec(Model):
    size: int = 0


class BoxStatus(Model):
    phase: str = ""


class Box(Resource[BoxSpec, BoxStatus], prefix="box"):
    pass


class BoxHooks(Hooks[Box]):
    async def admit(self, ctx: WriteContext, new: Box, old: Box | None) -> Box | None:
        if new.status.phase == "forbidden":
            raise Reject(422, "no such phase", field="status.phase")
        return None


@pytest.fixture(params=["file", "sqlite", "postgresql", "mariadb"])
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
    store = ResourceStore(storage, [Box])
    store.use_hooks([BoxHooks])
    yield store
    await storage.close()


async def boxes(client: ReconcileClient, count: int) -> list[Box]:
    return [await client.create(Box, f"b-{n}", {"size": n}) for n in range(count)]


async def test_statuses_are_written_published_and_logged_spec_as_stored(store):
    client = ReconcileClient(store)
    made = await boxes(client, 3)
    heard: list[Change] = []

    async def listen(change: Change) -> None:
        heard.append(change)

    store.add_listener(listen)
    start = await store.storage.latest("boxes")
    for box in made:
        box.status.phase = f"seen-{box.name}"
        box.spec.size = 99  # not a status: stays as stored
    written = await client.update_status_many(made)
    assert [b.status.phase for b in written] == ["seen-b-0", "seen-b-1", "seen-b-2"]
    for n, box in enumerate(made):
        got = await client.get(Box, box.name)
        assert got.status.phase == f"seen-b-{n}" and got.spec.size == n
        assert got.metadata.resource_version == written[n].metadata.resource_version
        assert got.metadata.resource_version != box.metadata.resource_version
    assert [(c.action, c.update_type, c.resource.name, c.previous.status.phase)
            for c in heard] == [("updated", "status", f"b-{n}", "") for n in range(3)]
    log = await store.storage.changes("boxes", start)
    assert [c.type for c in log] == ["MODIFIED"] * 3


async def test_a_stale_resource_is_a_conflict_and_none_is_written(store):
    client = ReconcileClient(store)
    made = await boxes(client, 3)
    await client.update_status(made[1].model_copy(deep=True))  # someone wrote meanwhile
    for box in made:
        box.status.phase = "mine"
    with pytest.raises(Conflict):
        await client.update_status_many(made)
    assert [b.status.phase for b in await client.list(Box)] == ["", "", ""]
    await client.delete(Box, "b-2")
    with pytest.raises(NotFound):
        await client.update_status_many([made[0], made[2]])


async def test_the_kinds_hook_admits_each(store):
    client = ReconcileClient(store)
    made = await boxes(client, 2)
    made[1].status.phase = "forbidden"
    with pytest.raises(Reject):
        await client.update_status_many(made)
    assert [b.status.phase for b in await client.list(Box)] == ["", ""]


async def test_on_sql_a_swap_that_fails_in_the_batch_rolls_the_batch_back(store):
    # The store checks every version first; a writer can still slip in between its read
    # and the batch: then the storage's swap fails, and the batch's transaction goes.
    if isinstance(store.storage, FileStorage):
        pytest.skip("files have no transaction")
    client = ReconcileClient(store)
    made = await boxes(client, 2)
    await client.update_status(made[1].model_copy(deep=True))
    docs = []
    for box in made:
        box.status.phase = "mine"
        docs.append(box.model_dump(mode="json", by_alias=True))
    with pytest.raises(Conflict):
        await store.storage.write_batch("boxes", [BulkItem(d) for d in docs], mode="update")
    assert [b.status.phase for b in await client.list(Box)] == ["", ""]



async def test_on_sql_the_events_are_recorded_in_the_outbox(store):
    if not store.use_outbox(lambda change: [OutboxMessage(
            "s", f"{change.update_type}-{change.resource.name}", "{}")]):
        pytest.skip("files have no outbox")
    client = ReconcileClient(store)
    made = await boxes(client, 2)
    for box in made:
        box.status.phase = "counted"
    await client.update_status_many(made)
    ids = [e.id for e in await store.storage.outbox_pending()]  # type: ignore[attr-defined]
    assert ids == ["None-b-0", "None-b-1", "status-b-0", "status-b-1"]
