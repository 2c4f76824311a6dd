"""Alembic migrations of the SQL storage, on SQLite, PostgreSQL and MariaDB.

A database made by the first schema (0001) and holding resources upgrades to the newest
without losing any of them; the migrated schema is exactly the one the code queries; a
service refuses to start on a schema that is missing, old or from a newer release.
"""

from __future__ import annotations

import asyncio
import json

import pytest
from sqlalchemy import select, text

from fabrica.resource import Selector, parse_field_selector, parse_selector, unique_key
from fabrica.storage import (
    AlreadyExists,
    DuplicateValues,
    Gone,
    Invalid,
    MigrationRequired,
    SQLStorage,
)
from fabrica.storage.sql import _migrate as migrations
from fabrica.storage.sql import _ops as ops
from fabrica.storage.sql._query import encode, list_query, resource_columns
from fabrica.storage.sql._schema import metadata
from tests._support.sqldb import SQL_BACKENDS, database

FIRST = "0001"


@pytest.fixture(params=SQL_BACKENDS)
def empty_url(request, tmp_path):
    with database(request.param, tmp_path) as url:
        yield url


@pytest.fixture
async def storage(empty_url):
    sql = SQLStorage(empty_url)
    yield sql
    await sql.close()


async def create_before_change_log(storage: SQLStorage, collection: str, doc: dict) -> dict:
    """A create as releases before the change log (schema < 0004) wrote it: a version from
    the database-wide counter, the resource (its JSON holding the version) and its labels,
    nothing else."""

    def write(conn):
        meta = doc["metadata"]
        stored = ops._with_version(doc, ops._next_revision(conn))
        conn.execute(ops.insert(ops.resources).values(
            collection=collection, uid=meta["uid"], name=meta["name"],
            resource_version=int(stored["metadata"]["resourceVersion"]),
            document=encode(stored), **resource_columns(stored)))
        ops._write_labels(conn, collection, meta["uid"], meta.get("labels") or {})
        return stored

    return await storage._run(write, write=True)


def device(name: str, uid: str, labels: dict[str, str]) -> dict:
    return {"apiVersion": "v1", "kind": "Device", "schemaVersion": "v1",
            "metadata": {"name": name, "uid": uid, "labels": labels, "annotations": {},
                         "createdAt": "2026-01-02T03:04:05Z", "updatedAt": "2026-01-02T03:04:05Z",
                         "resourceVersion": "", "generation": 1},
            "spec": {"port": 443}, "status": {}}


async def test_a_database_of_the_first_schema_upgrades_without_data_loss(storage):
    assert await storage.migrate(FIRST) == (None, FIRST)
    # What the first release wrote: resources, labels, revisions (no spec history yet).
    old = [await create_before_change_log(
        storage, "devices", device(f"d-{n}", f"dev-{n:08x}", {"n": str(n % 3)}))
        for n in range(30)]
    old.append(await create_before_change_log(
        storage, "racks", device("r-1", "rack-00000001", {"n": "1"})))

    assert await storage.migrate() == (FIRST, migrations.head_revision())
    await storage.check_schema()

    for doc in old[:30]:
        assert await storage.get("devices", doc["metadata"]["uid"]) == doc
    assert await storage.get_by_name("racks", "r-1") == old[30]
    listed = await storage.list("devices", selector=parse_selector("n=1"), limit=5)
    assert [d["metadata"]["name"] for d in listed] == ["d-1", "d-10", "d-13", "d-16", "d-19"]
    # Writes go on where they left off: new versions never repeat old ones, history works.
    before = {d["metadata"]["resourceVersion"] for d in old}
    updated = await storage.update("devices", old[0], old[0]["metadata"]["resourceVersion"],
                                   {"versionId": "v2", "spec": {"port": 443}})
    assert updated["metadata"]["resourceVersion"] not in before
    assert int(updated["metadata"]["resourceVersion"]) > max(int(v) for v in before)
    assert [v["versionId"] for v in await storage.list_versions("devices", "dev-00000000")] \
        == ["v2"]


async def test_the_migrated_schema_is_the_one_the_code_queries(storage):
    from alembic.autogenerate import compare_metadata
    from alembic.runtime.migration import MigrationContext

    await storage.migrate()

    def differences(conn):
        context = MigrationContext.configure(conn, opts={"compare_type": True})
        return [diff for diff in compare_metadata(context, metadata)
                if "fabrica_alembic_version" not in repr(diff)]

    assert await storage._run(differences) == []


async def test_downgrade_to_nothing_and_up_again(storage):
    await storage.migrate()
    await storage.downgrade(FIRST)
    assert await storage.schema_revision() == FIRST
    await storage.downgrade("base")
    assert await storage.schema_revision() is None
    assert await storage.migrate() == (None, migrations.head_revision())


async def test_a_downgrade_puts_the_versions_back_into_the_documents(storage):
    """From 0004 on a document is stored without its version (the row's column has it);
    the releases before read it from the JSON."""
    await storage.migrate()
    kept = await storage.create("devices", device("d-1", "dev-00000001", {"a": "b"}))
    kept = await storage.update("devices", kept, kept["metadata"]["resourceVersion"])
    await storage.create("devices", device("d-2", "dev-00000002", {}))
    stored = {"dev-00000002": await storage.get("devices", "dev-00000002"),
              "dev-00000001": kept}
    await storage.downgrade("0003")

    def documents(conn):
        return dict(conn.execute(select(ops.resources.c.uid, ops.resources.c.document)).all())

    assert {k: json.loads(v) for k, v in (await storage._run(documents)).items()} == stored
    await storage.migrate()
    assert await storage.list("devices") == [stored["dev-00000001"], stored["dev-00000002"]]


async def test_missing_old_and_unknown_schemas_are_refused_with_what_to_do(storage):
    command = "python -m svc.server migrate"
    with pytest.raises(MigrationRequired, match="has no fabrica schema yet: run `python -m svc"):
        await storage.check_schema(command)
    await storage.migrate(FIRST)
    with pytest.raises(MigrationRequired, match=f"has schema revision {FIRST}, this pyfabrica "
                                                f"needs {migrations.head_revision()}"):
        await storage.check_schema(command)
    await storage.migrate()
    await storage.check_schema(command)
    await storage._run(lambda conn: conn.execute(
        text("UPDATE fabrica_alembic_version SET version_num = '9999'")), write=True)
    with pytest.raises(MigrationRequired, match="newer than this pyfabrica knows"):
        await storage.check_schema(command)


async def test_concurrent_migrations_do_the_work_once(empty_url):
    stores = [SQLStorage(empty_url) for _ in range(3)]
    try:
        results = await asyncio.gather(*(s.migrate() for s in stores))
    finally:
        for s in stores:
            await s.close()
    head = migrations.head_revision()
    assert sorted(results, key=str) == sorted([(None, head), (head, head), (head, head)],
                                              key=str)


async def test_a_database_without_the_outbox_upgrades_and_records_events(storage):
    from fabrica.storage import OutboxMessage

    assert await storage.migrate("0002") == (None, "0002")
    old = await create_before_change_log(storage, "devices",
                                         device("d-old", "dev-0000000a", {}))
    await storage.migrate()
    assert await storage.get("devices", "dev-0000000a") == old
    assert (await storage.outbox_stats()).backlog == 0  # nothing invented for old writes

    def events(doc: dict) -> list[OutboxMessage]:
        version = doc["metadata"]["resourceVersion"]
        return [OutboxMessage("io.fabrica.device.updated", f"id-{version}", f'{{"v":{version}}}')]

    updated = await storage.update("devices", old, old["metadata"]["resourceVersion"],
                                   outbox=events)
    removed = await storage.delete("devices", "dev-0000000a", outbox=events)
    pending = await storage.outbox_pending()
    assert [(e.resource, e.id, e.payload) for e in pending] == [
        ("devices/dev-0000000a", f"id-{version}", f'{{"v":{version}}}')
        for version in (updated["metadata"]["resourceVersion"],
                        removed["metadata"]["resourceVersion"])]
    await storage.outbox_done([e.seq for e in pending[:1]])
    assert [e.seq for e in await storage.outbox_pending()] == [pending[1].seq]


async def test_an_outbox_that_fails_rolls_the_write_back(storage):
    await storage.migrate()

    def broken(doc: dict) -> list:
        raise RuntimeError("cannot build the event")

    with pytest.raises(RuntimeError):
        await storage.create("devices", device("d-1", "dev-0000000b", {}), outbox=broken)
    assert await storage.list("devices") == []
    assert (await storage.outbox_stats()).backlog == 0


async def test_prepare_schema_creates_an_empty_databases_and_refuses_pending_upgrades(storage):
    command = "python -m svc.server migrate"
    head = migrations.head_revision()
    assert await storage.prepare_schema(command) == (None, head)  # an empty database
    assert await storage.prepare_schema(command) is None  # current: nothing to do
    await storage.downgrade(FIRST)
    with pytest.raises(MigrationRequired, match=f"revision {FIRST}.*run `{command}`"):
        await storage.prepare_schema(command)  # an upgrade is the operator's decision
    assert await storage.schema_revision() == FIRST
    assert await storage.prepare_schema(command, upgrade=True) == (FIRST, head)


async def test_a_database_without_the_change_log_upgrades_and_logs_new_writes(storage):
    assert await storage.migrate("0003") == (None, "0003")
    old = [await create_before_change_log(storage, "devices",
                                          device(f"d-{n}", f"dev-{n:08x}", {}))
           for n in range(5)]
    gone = await create_before_change_log(storage, "devices",
                                          device("d-gone", "dev-000000ff", {}))
    await storage._run(lambda conn: conn.execute(ops.delete(ops.resources).where(
        ops.resources.c.uid == "dev-000000ff")), write=True)  # deleted back then
    newest = max(int(d["metadata"]["resourceVersion"]) for d in old)

    await storage.migrate()
    assert sorted(await storage.list("devices"), key=lambda d: d["metadata"]["name"]) == old
    assert await storage.horizon("devices") == newest
    assert await storage.latest("devices") >= newest
    assert await storage.changes("devices", after=newest) == []
    with pytest.raises(Gone) as too_old:
        await storage.changes("devices", after=newest - 1)
    assert (too_old.value.after, too_old.value.horizon) == (newest - 1, newest)

    updated = await storage.update("devices", old[0], old[0]["metadata"]["resourceVersion"])
    again = await storage.create("devices", device("d-gone", "dev-000000ff", {}))
    # A version taken now is above every one handed out before, the deleted one's too.
    assert int(again["metadata"]["resourceVersion"]) > int(gone["metadata"]["resourceVersion"])
    logged = await storage.changes("devices", after=newest)
    assert [(c.type, c.document) for c in logged] == [("MODIFIED", updated), ("ADDED", again)]
    assert await storage.latest("devices") == logged[-1].revision


def write_at_0004(storage: SQLStorage, collection: str, docs: list[dict]):
    """Creates as the release at schema 0004 made them: the collection's row counts
    (``revision``, locked until commit), each create logs its change, and the document is
    stored without its version (the row's column holds it)."""

    def write(conn):
        where = {"collection": collection}
        if conn.execute(text("SELECT COUNT(*) FROM fabrica_collections "
                             "WHERE collection = :collection"), where).scalar() == 0:
            conn.execute(text("INSERT INTO fabrica_collections (collection, revision, horizon) "
                              "VALUES (:collection, :revision, 0)"),
                         {**where, "revision": ops._next_revision(conn)})
        stored = []
        for doc in docs:
            conn.execute(text("UPDATE fabrica_collections SET revision = revision + 1 "
                              "WHERE collection = :collection"), where)
            revision = conn.execute(text("SELECT revision FROM fabrica_collections "
                                         "WHERE collection = :collection"), where).scalar_one()
            meta, body = doc["metadata"], encode(ops._without_version(doc))
            conn.execute(ops.insert(ops.resources).values(
                collection=collection, uid=meta["uid"], name=meta["name"],
                resource_version=revision, document=body, **resource_columns(doc)))
            conn.execute(text("INSERT INTO fabrica_changes (collection, revision, uid, type, "
                              "document) VALUES (:collection, :revision, :uid, 'ADDED', :body)"),
                         {**where, "revision": revision, "uid": meta["uid"], "body": body})
            stored.append(ops._with_version(doc, revision))
        return stored

    return storage._run(write, write=True)


def _version(doc: dict) -> int:
    return int(doc["metadata"]["resourceVersion"])


async def test_a_database_at_0004_upgrades_to_revision_sequences_and_back(storage):
    """The change log written at 0004 reads the same after the upgrade; writes go on just
    above the collection's last revision, one after the other; a write that rolls back after
    taking its number is passed. The downgrade leaves each collection's counter above every
    number handed out, and no skip marker behind."""
    assert await storage.migrate("0004") == (None, "0004")
    old = await write_at_0004(storage, "devices", [
        device(f"d-{n}", f"dev-{n:08x}", {"n": str(n)}) for n in range(5)])
    racks = await write_at_0004(storage, "racks", [device("r-1", "rack-00000001", {})])
    newest = _version(old[-1])

    await storage.migrate()
    await storage.check_schema()
    assert await storage.latest("devices") == newest
    assert [c.document for c in await storage.changes("devices", after=0)] == old
    assert await storage.latest("racks") == _version(racks[0])
    created = await storage.create("devices", device("d-new", "dev-000000aa", {}))
    assert _version(created) == newest + 1

    def broken(doc: dict) -> list:
        raise RuntimeError("cannot build the event")

    with pytest.raises(RuntimeError):  # rolls back after taking its number
        await storage.create("devices", device("d-lost", "dev-000000bb", {}), outbox=broken)
    last = await storage.create("devices", device("d-last", "dev-000000cc", {}))
    assert await storage.latest("devices") == _version(last)
    assert [c.document for c in await storage.changes("devices", after=newest)] == [
        created, last]

    await storage.downgrade("0004")

    def state(conn):
        counter = conn.execute(text("SELECT revision FROM fabrica_collections "
                                    "WHERE collection = 'devices'")).scalar_one()
        types = conn.execute(text("SELECT DISTINCT type FROM fabrica_changes")).scalars()
        return int(counter), sorted(types)

    counter, types = await storage._run(state)
    assert counter >= _version(last) and types == ["ADDED"]
    await storage.migrate()
    again = await storage.create("devices", device("d-again", "dev-000000dd", {}))
    assert _version(again) > counter
    assert [c.document for c in await storage.changes("devices", after=newest)] == [
        created, last, again]


async def test_a_database_at_0005_upgrades_to_unique_keys_built_from_its_data(storage):
    """0006 adds the unique-key tables empty; a kind's constraint is then built from what
    0005 stored (refused while stored resources share a value), and holds from then on."""
    assert await storage.migrate("0005") == (None, "0005")
    for n, serial in enumerate(["S1", "S2", "S1"]):
        await storage.create("bmcs", {**device(f"b-{n}", f"bmc-{n:08x}", {}),
                                      "spec": {"serial": serial}})
    assert await storage.migrate() == ("0005", migrations.head_revision())
    await storage.check_schema()
    with pytest.raises(DuplicateValues, match="bmc-00000000, bmc-00000002"):
        await storage.prepare_unique("bmcs", ["spec.serial"])
    await storage.delete("bmcs", "bmc-00000002")
    await storage.prepare_unique("bmcs", ["spec.serial"])
    with pytest.raises(AlreadyExists) as taken:
        await storage.create("bmcs", {**device("b-9", "bmc-00000009", {}),
                                      "spec": {"serial": "S2"}},
                             unique={"spec.serial": unique_key(["S2"])})
    assert taken.value.holder == "bmc-00000001"
    await storage.downgrade("0005")  # and back: the tables go, the resources stay
    assert len(await storage.list("bmcs")) == 2


async def test_a_database_at_0006_upgrades_to_a_field_index_built_from_its_data(storage):
    """0007 adds the field index empty; the fields a kind selects by are indexed from what
    0006 stored when a service declaring them starts (`prepare_fields`), kept by every
    write from then on, and answer lists by ``?fieldSelector=``."""
    assert await storage.migrate("0006") == (None, "0006")
    for n, rack in enumerate(["r1", "r2", "r1"]):
        await storage.create("bmcs", {**device(f"b-{n}", f"bmc-{n:08x}", {}),
                                      "spec": {"rackUID": rack, "slot": n}})
    assert await storage.migrate() == ("0006", migrations.head_revision())
    await storage.check_schema()
    by_rack = Selector(fields=parse_field_selector("spec.rackUID=r1", ["spec.rackUID"]))
    with pytest.raises(Invalid, match="not in the field index"):  # never a wrong answer
        await storage.list("bmcs", selector=by_rack)
    await storage.prepare_fields("bmcs", ["metadata.name", "spec.rackUID"])

    async def listed(text: str) -> list[str]:
        fields = parse_field_selector(text, ["metadata.name", "spec.rackUID", "spec.slot"])
        return [d["metadata"]["name"]
                for d in await storage.list("bmcs", selector=Selector(fields=fields))]

    assert await listed("spec.rackUID=r1") == ["b-0", "b-2"]
    assert await listed("spec.rackUID!=r1") == ["b-1"]
    await storage.create("bmcs", {**device("b-3", "bmc-00000003", {}),
                                  "spec": {"rackUID": "r1"}})
    current = await storage.get("bmcs", "bmc-00000000")
    await storage.update("bmcs", {**current, "spec": {"rackUID": "r2"}},
                         current["metadata"]["resourceVersion"])
    assert await listed("spec.rackUID=r1") == ["b-2", "b-3"]
    assert await listed("spec.rackUID=r1,metadata.name!=b-3") == ["b-2"]
    await storage.prepare_fields("bmcs", ["spec.rackUID", "spec.slot"])  # a field added
    assert await listed("spec.slot=1") == ["b-1"]
    await storage.prepare_fields("bmcs", ["spec.slot"])  # and one dropped: its rows go

    def rows(conn):
        return sorted(conn.execute(text("SELECT DISTINCT field FROM fabrica_field_index"))
                      .scalars())

    assert await storage._run(rows) == ["spec.slot"]
    await storage.downgrade("0006")  # and back: the tables go, the resources stay
    assert len(await storage.list("bmcs")) == 4


async def test_a_list_by_a_field_reads_the_field_index_not_the_collection(storage):
    """SQLite has no statistics to know that few resources hold a value: ordered by name,
    it walked the whole collection in name order testing each resource against the index
    (a list by a field grew with the kind: 10x from 1,000 to 10,000 resources)."""
    if storage.name != "sqlite":
        pytest.skip("the other databases plan from their statistics (bench/field_selector)")
    await storage.migrate()
    await storage.prepare_fields("bmcs", ["spec.rackUID"])
    fields = parse_field_selector("spec.rackUID=r1", ["spec.rackUID"])
    query = list_query("bmcs", Selector(fields=fields), 100, "b-1")

    def plan(conn):
        return " | ".join(row[3] for row in conn.execute(
            text("EXPLAIN QUERY PLAN " + str(query.compile(
                conn, compile_kwargs={"literal_binds": True})))))

    found = await storage._run(plan)
    assert "ix_fabrica_field_index_value" in found, found
    assert "(collection=? AND uid=?)" in found, found  # each holder by its primary key
