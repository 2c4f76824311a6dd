"""The change log (watch), one suite for every backend: file, SQLite, PostgreSQL, MariaDB.

Every write is logged in order with its type and document; `latest` is where a reader is
up to date; compaction moves the horizon and older readers get `Gone`; concurrent writers
make a log with no gap and no repeat whose replay is the stored state. Two OS processes
writing one collection are in test_storage_changes_processes.py.
"""

from __future__ import annotations

import asyncio
import random

import pytest
from sqlalchemy import insert, select, text

from fabrica.storage import AlreadyExists, Conflict, Gone, NotFound, StoredChange
from fabrica.storage.sql import _changes as change_log
from fabrica.storage.sql._schema import collections, resources
from tests._support.storage import doc as device_doc
from tests._support.storage import uid
from tests._support.wait import eventually


def doc(name: str, uid: str, **spec):
    return device_doc(name, uid, {"n": name}, **spec)


def rv(document) -> int:
    return int(document["metadata"]["resourceVersion"])


def replay(changes: list[StoredChange]) -> dict[str, int]:
    """uid -> resourceVersion, as a watcher that applied `changes` in order knows it."""
    state: dict[str, int] = {}
    for change in changes:
        key = change.document["metadata"]["uid"]
        if change.type == "DELETED":
            del state[key]
        else:
            state[key] = change.revision
    return state


async def test_every_write_is_logged_in_order(storage):
    assert await storage.latest("devices") == 0
    assert await storage.changes("devices", after=0) == []
    a = await storage.create("devices", doc("a", uid(1), v=1))
    b = await storage.create("devices", doc("b", uid(2), v=1))
    a2 = await storage.update("devices", {**a, "spec": {"v": 2}}, str(rv(a)))
    a3 = await storage.update("devices", {**a2, "status": {"up": True}}, str(rv(a2)))
    gone = await storage.delete("devices", uid(2))
    assert rv(gone) > rv(a3) and gone["spec"] == b["spec"]
    with pytest.raises(Conflict):  # failed writes are not changes
        await storage.update("devices", a, str(rv(a)))
    with pytest.raises(NotFound):
        await storage.delete("devices", uid(2))

    logged = await storage.changes("devices", after=0)
    assert [(c.type, c.document) for c in logged] == [
        ("ADDED", a), ("ADDED", b), ("MODIFIED", a2), ("MODIFIED", a3), ("DELETED", gone)]
    assert [c.revision for c in logged] == [rv(d) for d in (a, b, a2, a3, gone)]
    assert await storage.latest("devices") == rv(gone)
    assert await storage.changes("devices", after=rv(gone)) == []
    assert await storage.changes("devices", after=rv(a2)) == logged[3:]
    assert await storage.changes("devices", after=0, limit=2) == logged[:2]
    assert await storage.changes("devices", after=logged[1].revision, limit=2) == logged[2:4]
    assert await storage.latest("racks") == 0  # collections are separate
    assert await storage.changes("racks", after=0) == []


async def test_compaction_moves_the_horizon_and_older_readers_are_gone(storage):
    current = await storage.create("devices", doc("a", uid(1), v=0))
    for n in range(9):
        current = await storage.update("devices", {**current, "spec": {"v": n + 1}},
                                       str(rv(current)))
    assert await storage.horizon("devices") == 0
    assert len(await storage.changes("devices", after=0)) == 10
    await storage.compact("devices", keep=3)
    horizon = await storage.horizon("devices")
    assert horizon == rv(current) - 3
    assert [c.document for c in await storage.changes("devices", after=horizon)][-1] == current
    assert len(await storage.changes("devices", after=horizon)) == 3
    with pytest.raises(Gone) as gone:
        await storage.changes("devices", after=horizon - 1)
    assert (gone.value.collection, gone.value.after, gone.value.horizon) == (
        "devices", horizon - 1, horizon)
    with pytest.raises(Gone):
        await storage.changes("devices", after=0)
    await storage.compact("devices", keep=100)  # never moves back
    assert await storage.horizon("devices") == horizon
    await storage.compact("devices", keep=0)
    assert await storage.horizon("devices") == await storage.latest("devices") == rv(current)
    assert await storage.changes("devices", after=rv(current)) == []


async def test_the_log_compacts_itself_to_the_history_it_keeps(open_backend):
    storage = await open_backend(change_history=5)
    current = await storage.create("devices", doc("a", uid(1), v=0))
    for n in range(30):
        current = await storage.update("devices", {**current, "spec": {"v": n + 1}},
                                       str(rv(current)))
    horizon = await storage.horizon("devices")
    assert rv(current) - 5 <= horizon < rv(current)
    logged = await storage.changes("devices", after=horizon)
    assert 1 <= len(logged) <= 5 and logged[-1].document == current


async def test_concurrent_writers_make_a_log_without_gaps_or_repeats(storage):
    """Many tasks write while a reader follows the log: what the reader collected, and the
    log read at the end, are the same strictly increasing sequence, and replaying it gives
    the stored state, resourceVersion for resourceVersion."""
    done = asyncio.Event()
    followed: list[StoredChange] = []

    async def follow() -> None:
        after = 0
        while True:
            finished = done.is_set()
            batch = await storage.changes("devices", after=after, limit=7)
            followed.extend(batch)
            after = batch[-1].revision if batch else after
            if finished and not batch:
                return
            await asyncio.sleep(0)

    async def writer(n: int) -> None:
        rng = random.Random(n)
        current = await storage.create("devices", doc(f"d-{n}", uid(n), v=0))
        for step in range(4):
            try:
                current = await storage.update("devices", {**current, "spec": {"v": step}},
                                               str(rv(current)))
            except Conflict:  # another writer's update of the shared resource won
                pass
            if rng.random() < 0.3:  # contend on one resource too
                shared = await storage.get("devices", uid(1000))
                try:
                    await storage.update("devices", {**shared, "spec": {"by": n}},
                                         str(rv(shared)))
                except Conflict:
                    pass
        if n % 3 == 0:
            await storage.delete("devices", uid(n))

    await storage.create("devices", doc("shared", uid(1000)))
    reader = asyncio.create_task(follow())
    await asyncio.gather(*(writer(n) for n in range(16)))
    done.set()
    await reader

    logged = await storage.changes("devices", after=0, limit=10_000)
    revisions = [c.revision for c in logged]
    assert revisions == sorted(set(revisions))
    assert followed == logged
    assert all(c.revision == rv(c.document) for c in logged)
    stored = {d["metadata"]["uid"]: rv(d) for d in await storage.list("devices")}
    assert replay(logged) == stored
    assert await storage.latest("devices") == revisions[-1]


async def test_the_first_writes_of_a_new_collection_race_safely(open_backend):
    """Writers on separate connections (as separate processes would be) all start a new
    collection at once: each write lands once, in one gap-free log."""
    storages = [await open_backend() for _ in range(3)]
    created = await asyncio.gather(*(
        storages[n % 3].create("racks", doc(f"r-{n}", f"rack-{n:08x}")) for n in range(12)))
    logged = await storages[0].changes("racks", after=0)
    assert sorted(c.revision for c in logged) == [c.revision for c in logged]
    assert sorted(rv(d) for d in created) == [c.revision for c in logged]
    assert {c.type for c in logged} == {"ADDED"}
    assert await storages[1].latest("racks") == logged[-1].revision


@pytest.mark.parametrize("backend_url", ["sqlite", "postgresql", "mariadb"], indirect=True)
async def test_writers_with_the_outbox_and_a_relay_never_deadlock(storage):
    """Writes lock their row, labels and snapshots first, their collection last, then write
    their change and outbox rows; a relay deletes relayed outbox rows meanwhile: every write
    and every event lands, each event with its write's version."""
    from fabrica.storage import OutboxMessage

    def events(document: dict) -> list[OutboxMessage]:
        version = document["metadata"]["resourceVersion"]
        return [OutboxMessage("io.fabrica.device", f"id-{version}", f'{{"v": "{version}"}}')]

    relayed: list[str] = []
    per_resource: dict[str, list[int]] = {}
    done = asyncio.Event()

    async def relay() -> None:
        while not done.is_set() or (await storage.outbox_stats()).backlog:
            entries = await storage.outbox_pending(50)
            relayed.extend(e.id for e in entries)
            assert all(e.payload == f'{{"v": "{e.id[3:]}"}}' for e in entries)
            for e in entries:
                per_resource.setdefault(e.resource, []).append(int(e.id[3:]))
            await storage.outbox_done([e.seq for e in entries])
            await asyncio.sleep(0)

    async def writer(n: int) -> None:
        current = await storage.create("devices", doc(f"d-{n}", uid(n)), outbox=events)
        for step in range(3):
            current = await storage.update("devices", {**current, "spec": {"v": step}},
                                           str(rv(current)), outbox=events)
        await storage.delete("devices", uid(n), outbox=events)

    relaying = asyncio.create_task(relay())
    await asyncio.gather(*(writer(n) for n in range(10)))
    done.set()
    await relaying
    logged = await storage.changes("devices", after=0)
    assert len(logged) == 50
    assert sorted(relayed) == sorted(f"id-{c.revision}" for c in logged)
    assert all(versions == sorted(versions) for versions in per_resource.values())


@pytest.fixture
def counted_revisions(monkeypatch):
    """Revisions counted in the collection's row, as on MySQL (no sequences), on MariaDB:
    the same statements, on a server these tests have."""
    monkeypatch.setattr(change_log, "sequenced", lambda dialect: False)


@pytest.mark.parametrize("backend_url", ["mariadb"], indirect=True)
async def test_counted_revisions_log_every_write_in_order(counted_revisions, storage):
    """The MySQL way (see `counted_revisions`) keeps the log's contract too."""
    await test_every_write_is_logged_in_order(storage)


@pytest.mark.parametrize("backend_url", ["mariadb"], indirect=True)
async def test_counted_revisions_make_a_log_without_gaps(counted_revisions, storage):
    await test_concurrent_writers_make_a_log_without_gaps_or_repeats(storage)


@pytest.mark.parametrize("backend_url", ["mariadb"], indirect=True)
async def test_a_write_takes_its_collections_lock_last(counted_revisions, storage):
    """Where the collection's row counts, what a write can fail on (a taken name, a stale
    version, a missing resource) is found before it takes the row's lock: while another
    transaction holds that lock, those writes fail at once; a good write waits for the
    lock, then lands with the next version. (PostgreSQL and MariaDB draw from sequences:
    sql/test_changes_in_flight.py.)"""
    current = await storage.create("devices", doc("a", uid(1)))
    async with storage.engine.connect() as holder:
        await holder.execute(select(collections.c.settled).where(
            collections.c.collection == "devices").with_for_update())
        landing = asyncio.create_task(storage.create("devices", doc("b", uid(2))))
        with pytest.raises(AlreadyExists):
            await asyncio.wait_for(storage.create("devices", doc("a", uid(3))), 30)
        with pytest.raises(Conflict):
            await asyncio.wait_for(storage.update("devices", current, "999999999"), 30)
        with pytest.raises(NotFound):
            await asyncio.wait_for(storage.delete("devices", uid(4)), 30)
        assert not landing.done()
        await holder.rollback()
    landed = await landing
    assert rv(landed) == rv(current) + 1
    assert [c.document for c in await storage.changes("devices", after=rv(current))] == [
        landed]


@pytest.mark.parametrize("backend_url", ["postgresql", "mariadb"], indirect=True)
async def test_creates_queued_on_a_name_whose_insert_rolls_back_all_finish(storage):
    """Creates of one name wait on the transaction that inserted it first; when that one
    rolls back, InnoDB has them all upgrade their locks at once and breaks the deadlock by
    rolling one back: that write runs again. One wins, the other finds the name taken."""
    await storage.create("devices", doc("other", uid(9)))
    async with storage.engine.connect() as first:
        await first.execute(insert(resources).values(
            collection="devices", uid=uid(1), name="contested", resource_version=1,
            document="{}"))
        racing = [asyncio.create_task(storage.create("devices", doc("contested", uid(n))))
                  for n in (2, 3)]
        async with storage.engine.connect() as probe:
            async def both_waiting() -> bool:
                return bool(await probe.scalar(text(_WAITING[storage.name])) >= 2)
            # InnoDB refreshes this view 0.1 s after a read: no use asking more often
            await eventually(both_waiting, timeout=30, interval=0.2)
        await first.rollback()
    outcomes = await asyncio.gather(*racing, return_exceptions=True)
    assert sorted(type(o).__name__ for o in outcomes) == ["AlreadyExists", "dict"]


_WAITING = {  # transactions waiting for a lock
    "postgresql": "SELECT COUNT(*) FROM pg_locks WHERE NOT granted",
    "mysql": "SELECT COUNT(*) FROM information_schema.INNODB_LOCK_WAITS",
    "mariadb": "SELECT COUNT(*) FROM information_schema.INNODB_LOCK_WAITS",
}
