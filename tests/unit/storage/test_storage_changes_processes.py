"""Two OS processes write one collection while a third follows its change log: the log
has no gap and no repeat, the follower saw exactly it, and its replay is the stored state.
On the file backend (a shared data dir), PostgreSQL and MariaDB (a shared database)."""

from __future__ import annotations

import asyncio
import multiprocessing

import pytest

from fabrica.storage import Conflict, FileStorage, SQLStorage, StoredChange
from tests.unit.storage.test_storage_changes import doc, replay, rv

WRITES = 12


def _open(place: str):
    return SQLStorage(place) if "://" in place else FileStorage(place)


def _write_in_process(place: str, worker: int, barrier) -> None:
    async def work() -> None:
        storage = _open(place)
        try:
            barrier.wait()
            for n in range(WRITES):
                key = f"dev-{worker:04x}{n:04x}"
                current = await storage.create("devices", doc(f"w{worker}-{n}", key, v=0))
                await storage.update("devices", {**current, "spec": {"v": 1}},
                                     str(rv(current)))
                shared = await storage.get("devices", "dev-ffffffff")
                try:  # both processes contend on one resource too
                    await storage.update("devices", {**shared, "spec": {"by": worker}},
                                         str(rv(shared)))
                except Conflict:
                    pass
                if n % 4 == 0:
                    await storage.delete("devices", key)
        finally:
            await storage.close()

    asyncio.run(work())


@pytest.mark.parametrize("backend_url", ["file", "postgresql", "mariadb"], indirect=True)
async def test_two_processes_writing_one_collection_make_one_gap_free_log(
        open_backend, backend_url, tmp_path):
    storage = await open_backend()
    await storage.create("devices", doc("shared", "dev-ffffffff"))
    start = await storage.latest("devices")
    place = backend_url or str(tmp_path)
    ctx = multiprocessing.get_context("spawn")
    barrier = ctx.Barrier(2)
    procs = [ctx.Process(target=_write_in_process, args=(place, w, barrier)) for w in (1, 2)]
    for proc in procs:
        proc.start()

    followed: list[StoredChange] = []
    after = start
    while True:
        running = any(proc.is_alive() for proc in procs)
        batch = await storage.changes("devices", after=after, limit=5)
        followed.extend(batch)
        after = batch[-1].revision if batch else after
        if not running and not batch:
            break
        await asyncio.sleep(0.002)
    for proc in procs:
        proc.join(30)
        assert proc.exitcode == 0

    logged = await storage.changes("devices", after=start, limit=10_000)
    revisions = [c.revision for c in logged]
    assert revisions == sorted(set(revisions))
    assert followed == logged
    assert len([c for c in logged if c.type == "ADDED"]) == 2 * WRITES
    assert all(c.revision == rv(c.document) for c in logged)
    everything = await storage.changes("devices", after=0, limit=10_000)
    stored = {d["metadata"]["uid"]: rv(d) for d in await storage.list("devices")}
    assert replay(everything) == stored
