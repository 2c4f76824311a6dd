"""Writes in flight on PostgreSQL and MariaDB, where revisions come from a sequence per
collection and writes of one collection commit in any order (see storage/sql/_changes.py).

A write in flight holds readers back at its revision and holds no other writer back; a
write that rolls back after taking its revision, or whose connection is killed, leaves a
hole that the next reader passes without waiting; and readers following the log while
many connections write, roll back and die never see a change appear below what they read.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
from collections.abc import AsyncIterator
from typing import Any

import pytest
from sqlalchemy import text

from fabrica.storage import AlreadyExists, Conflict, NotFound, SQLStorage, StoredChange
from fabrica.storage.sql import _ops as ops
from fabrica.storage.sql._changes import SKIP, sequence_name
from tests._support.wait import eventually
from tests.unit.storage.test_storage_changes import doc, replay, rv

pytestmark = pytest.mark.parametrize("backend_url", ["postgresql", "mariadb"], indirect=True)

DEADLINE = 30.0


class Held:
    """A write whose transaction took its revision and stays open."""

    def __init__(self, conn: Any, stored: dict, backend_id: int) -> None:
        self.conn, self.stored, self.backend_id = conn, stored, backend_id

    @property
    def revision(self) -> int:
        return rv(self.stored)


@contextlib.asynccontextmanager
async def held_create(storage: SQLStorage, document: dict) -> AsyncIterator[Held]:
    """A create that has run all its statements (its revision taken, its change logged)
    but not committed; the caller commits, rolls back or kills its connection.

    (On MariaDB, a create of a name just before the held one in name order waits for it:
    InnoDB's unique check locks the next entry of the name index. So the tests hold names
    that sort first.)"""
    conn = await storage.engine.connect()
    try:
        backend_id = await conn.scalar(text(
            "SELECT pg_backend_pid()" if storage.name == "postgresql"
            else "SELECT CONNECTION_ID()"))
        stored = await conn.run_sync(ops.create, "devices", document, None, None, 0)
        yield Held(conn, stored, int(backend_id))
    finally:
        with contextlib.suppress(Exception):  # a killed connection cannot be closed cleanly
            await conn.rollback()
        with contextlib.suppress(Exception):
            await conn.close()


async def kill(storage: SQLStorage, held: Held) -> None:
    """End the held write's connection from the server side, as an operator or a crash
    would: the database rolls its transaction back."""
    async with storage.engine.connect() as admin:
        if storage.name == "postgresql":
            await admin.execute(text("SELECT pg_terminate_backend(:pid)"),
                                {"pid": held.backend_id})
        else:
            await admin.execute(text(f"KILL CONNECTION {held.backend_id}"))


async def wait_for_latest(storage: SQLStorage, at_least: int) -> int:
    """Poll `latest` until it reaches `at_least` (the database ends a killed connection's
    transaction shortly after the kill returns); fail after a deadline."""
    async def reached() -> int:
        latest = await storage.latest("devices")
        assert latest >= at_least, f"latest stuck at {latest}, want {at_least}"
        return latest
    return await eventually(reached, timeout=DEADLINE)


async def test_a_write_in_flight_holds_readers_back_and_no_writer(storage, open_backend):
    first = await storage.create("devices", doc("a", "dev-00000001"))
    base = await storage.latest("devices")
    other = await open_backend()  # another process's view: a storage of its own
    async with held_create(storage, doc("0-held", "dev-00000002")) as held:
        later = [await asyncio.wait_for(
            storage.create("devices", doc(f"n-{n}", f"dev-0000001{n}")), DEADLINE)
            for n in range(3)]
        assert held.revision == base + 1
        assert [rv(d) for d in later] == [base + 2, base + 3, base + 4]
        # Writes that fail draw no number (nothing for readers to settle).
        with pytest.raises(AlreadyExists):
            await storage.create("devices", doc("a", "dev-00000009"))
        with pytest.raises(Conflict):
            await storage.update("devices", first, "999999")
        with pytest.raises(NotFound):
            await storage.delete("devices", "dev-000000ff")
        # A read after `later` was acknowledged must show it: `latest` waits for the
        # write in flight below it rather than answer `base`.
        latest = [asyncio.create_task(reader.latest("devices")) for reader in (storage, other)]
        for reader in (storage, other):
            assert await reader.changes("devices", after=base) == []
            assert await reader.changes("devices", after=base + 1) == [
                StoredChange(rv(d), "ADDED", d) for d in later]  # a watch resumed past it
        await asyncio.sleep(0.05)  # kept: proves they do NOT answer while the write is held
        assert not any(task.done() for task in latest)
        await held.conn.commit()
    assert [await task for task in latest] == [base + 4, base + 4]
    for reader in (storage, other):
        assert await reader.latest("devices") == base + 4
        assert [(c.revision, c.document) for c in await reader.changes("devices", base)] == [
            (rv(d), d) for d in [held.stored, *later]]


@pytest.mark.parametrize("end", ["rollback", "kill"])
async def test_a_write_that_never_commits_leaves_a_hole_readers_pass(storage, open_backend,
                                                                     end):
    await storage.create("devices", doc("a", "dev-00000001"))
    base = await storage.latest("devices")
    other = await open_backend()
    async with held_create(storage, doc("0-held", "dev-00000002")) as held:
        later = await asyncio.wait_for(storage.create("devices", doc("b", "dev-00000003")),
                                       DEADLINE)
        assert await other.changes("devices", after=base) == []  # held back by the hole
        if end == "rollback":
            await held.conn.rollback()
        else:
            await kill(storage, held)
    if end == "rollback":  # over when rollback returns: the very next read passes it
        assert await other.latest("devices") == rv(later)
    else:
        await wait_for_latest(other, rv(later))
    for reader in (other, storage):
        assert await reader.latest("devices") == rv(later)
        assert await reader.changes("devices", after=base) == [
            StoredChange(rv(later), "ADDED", later)]
    assert await storage.get("devices", "dev-00000003") == later
    with pytest.raises(NotFound):
        await storage.get("devices", "dev-00000002")
    assert await _types(storage, held.revision) == [SKIP]  # settled once, for everyone


async def test_a_write_whose_number_a_reader_settled_draws_another(storage):
    """A reader that finds a number nobody holds fills it: a writer that drew that number
    but had not yet logged it (a moment inside one statement) fails on the log's primary
    key, and the write runs again with the next number."""
    await storage.create("devices", doc("a", "dev-00000001"))
    upcoming = await _next_number(storage)
    await storage._run(lambda conn: conn.execute(text(
        "INSERT INTO fabrica_changes (collection, revision, uid, type, document) "
        f"VALUES ('devices', {upcoming}, '', '{SKIP}', '')")), write=True)
    created = await storage.create("devices", doc("b", "dev-00000002"))
    assert rv(created) == upcoming + 1
    assert await storage.get("devices", "dev-00000002") == created
    assert [c.document for c in await storage.changes("devices", upcoming - 1)] == [created]
    assert await storage.latest("devices") == upcoming + 1


async def test_readers_never_see_a_change_appear_below_what_they_read(storage, open_backend):
    """Writers on several connections (each storage its own pool, as processes would be)
    create, update and delete; some writes take their revision and stay open while the
    others commit above it, then commit, roll back, or have their connection killed. Two
    readers follow the log meanwhile: one by `changes` alone, one as the watch feed does
    (`latest`, then `changes` up to it). Each saw exactly the final log, in order, and its
    replay is the stored state."""
    writers = [storage, await open_backend(), await open_backend()]
    done = asyncio.Event()
    latest_seen: list[tuple[int, list[int]]] = []
    kept: set[str] = set()  # names of the held creates that committed

    async def follow(reader: SQLStorage, by_latest: bool) -> list[StoredChange]:
        seen: list[StoredChange] = []
        after = 0
        while True:
            finished = done.is_set()  # then this pass reads to the end
            if by_latest:  # as the watch feed: up to `latest`, then at `latest`
                latest = await reader.latest("devices")
                while after < latest:
                    batch = await reader.changes("devices", after=after, limit=5)
                    seen.extend(batch)
                    after = batch[-1].revision if batch else after
                    if len(batch) < 5:
                        after = max(after, latest)
                latest_seen.append((latest, [c.revision for c in seen]))
                if finished:
                    return seen
            else:
                batch = await reader.changes("devices", after=after, limit=5)
                seen.extend(batch)
                after = batch[-1].revision if batch else after
                if finished and not batch:
                    return seen
            await asyncio.sleep(0)

    async def write(n: int) -> None:
        rng = random.Random(n)
        store = writers[n % len(writers)]
        key = f"dev-{n:04x}0000"
        current = await store.create("devices", doc(f"w-{n}", key, v=0))
        for step in range(6):
            if rng.random() < 0.25:
                await hold(store, n, step, rng.choice(["commit", "rollback", "kill"]))
            current = await store.update("devices", {**current, "spec": {"v": step}},
                                         str(rv(current)))
        if n % 3 == 0:
            await store.delete("devices", key)

    async def hold(store: SQLStorage, n: int, step: int, end: str) -> None:
        name = f"0-{n}-{step}"
        async with held_create(store, doc(name, f"dev-{n:04x}1{step:03x}")) as held:
            await store.create("devices", doc(f"y-{n}-{step}", f"dev-{n:04x}2{step:03x}"))
            await asyncio.sleep(random.random() / 20)  # others commit above it meanwhile
            if end == "commit":
                await held.conn.commit()
                kept.add(name)
            elif end == "rollback":
                await held.conn.rollback()
            else:
                await kill(store, held)

    readers = [asyncio.create_task(follow(await open_backend(), by)) for by in (False, True)]
    await asyncio.gather(*(write(n) for n in range(12)))
    await wait_for_latest(storage, max(await _committed(storage)))
    done.set()
    followed = await asyncio.wait_for(asyncio.gather(*readers), DEADLINE * 2)

    logged = await storage.changes("devices", after=0, limit=100_000)
    revisions = [c.revision for c in logged]
    assert revisions == sorted(set(revisions))
    assert revisions == sorted(await _committed(storage))
    for seen in followed:
        assert seen == logged
    for latest, seen in latest_seen:  # everything up to `latest` was readable then
        assert [r for r in revisions if r <= latest] == [r for r in seen if r <= latest]
    stored = {d["metadata"]["uid"]: rv(d) for d in await storage.list("devices")}
    assert replay(logged) == stored
    assert {d["metadata"]["name"] for d in await storage.list("devices")
            if d["metadata"]["name"].startswith("0-")} == kept


async def _types(storage: SQLStorage, revision: int) -> list[str]:
    def read(conn):
        return list(conn.execute(text(
            "SELECT type FROM fabrica_changes WHERE collection = 'devices' "
            "AND revision = :revision"), {"revision": revision}).scalars())

    return await storage._run(read)


async def _committed(storage: SQLStorage) -> list[int]:
    """The revisions of every committed change (skip markers aside)."""
    def read(conn):
        return list(conn.execute(text(
            f"SELECT revision FROM fabrica_changes WHERE collection = 'devices' "
            f"AND type <> '{SKIP}'")).scalars())

    return await storage._run(read)


async def _next_number(storage: SQLStorage) -> int:
    sequence = sequence_name("devices")

    def read(conn):
        if conn.dialect.name == "postgresql":
            return conn.execute(text(f"SELECT last_value + 1 FROM {sequence}")).scalar_one()
        return conn.execute(text(f"SELECT next_not_cached_value FROM {sequence}")).scalar_one()

    return int(await storage._run(read))

