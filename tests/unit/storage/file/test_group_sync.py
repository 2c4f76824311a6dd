"""Group commit of the file backend (`_io.GroupSync`): writers that ask for a sync while one
is in flight share the next one, and each gets a sync that began after it asked."""

import asyncio
import threading
import time
from pathlib import Path

import pytest

from fabrica.storage import AlreadyExists, FileStorage
from fabrica.storage.file._io import GroupSync
from tests._support.storage import short_doc as doc


class HeldSync(GroupSync):
    """The real sync, held at its start until `go` is set, counting who it began for."""

    def __init__(self, root: Path) -> None:
        super().__init__(root)
        self.go = threading.Event()
        self.began = threading.Event()
        self.fail: OSError | None = None

    def _sync(self, dirs: set[str]) -> None:
        self.began.set()
        assert self.go.wait(10)
        if self.fail is not None:
            raise self.fail
        super()._sync(dirs)


def _asking(group: GroupSync, count: int, errors: list[BaseException]) -> list[threading.Thread]:
    def ask() -> None:
        try:
            group.sync((group._root,))
        except OSError as exc:
            errors.append(exc)
    threads = [threading.Thread(target=ask) for _ in range(count)]
    for thread in threads:
        thread.start()
    return threads


def test_writers_arriving_during_a_sync_share_the_next_one(tmp_path):
    group = HeldSync(tmp_path)
    errors: list[BaseException] = []
    first = _asking(group, 1, errors)
    assert group.began.wait(10)  # the first sync is in flight, held
    group.began.clear()
    later = _asking(group, 7, errors)
    deadline = time.monotonic() + 10
    while len(group._cond._waiters) < 7:  # (CPython's Condition) all 7 wait for a sync
        assert time.monotonic() < deadline
        time.sleep(0.01)
    assert not group.began.is_set()  # none of them began a sync of its own meanwhile
    group.go.set()
    for thread in first + later:
        thread.join(10)
    assert not errors
    assert group.syncs == 2  # one for the first, one shared by the seven that came later


def test_a_failed_sync_fails_every_writer_that_waited_for_it(tmp_path):
    group = HeldSync(tmp_path)
    group.fail = OSError(5, "Input/output error")
    errors: list[BaseException] = []
    threads = _asking(group, 4, errors)
    group.go.set()
    for thread in threads:
        thread.join(10)
    assert len(errors) == 4 and all(isinstance(e, OSError) for e in errors)
    group.fail = None
    assert _asking(group, 1, errors)[0].join(10) is None and len(errors) == 4  # recovers


async def test_concurrent_creates_share_syncs(tmp_path):
    storage = FileStorage(tmp_path)
    if not storage._group.covers_files:
        pytest.skip("no syncfs here: each writer fsyncs its own files")
    created = await asyncio.gather(*(storage.create("devices", doc(f"d-{n}", f"dev-{n:08x}"))
                                     for n in range(64)))
    await storage.close()
    assert len(created) == 64
    assert storage._group.syncs < 2 * 64  # two syncs a create, unless shared


async def test_create_many_is_one_batched_write(tmp_path):
    storage = FileStorage(tmp_path)
    items = [(doc(f"d-{n}", f"dev-{n:08x}"), None, None) for n in range(200)]
    created = await storage._run(storage._create_many_sync, "devices", items)
    assert [c["metadata"]["resourceVersion"] for c in created] == [str(n) for n in
                                                                    range(1, 201)]
    assert [c.revision for c in await storage.changes("devices", 0, 1000)] == list(
        range(1, 201))
    await storage.close()
    if storage._group.covers_files:
        assert storage._group.syncs == 2  # all temp files, then all renames


async def test_creates_written_together_fail_on_their_own(tmp_path):
    """One group of the create thread: a taken name refuses that create alone; the log
    holds exactly the creates that succeeded, in revision order, with no hole left."""
    storage = FileStorage(tmp_path)
    await storage.create("devices", doc("taken", "dev-000000aa"))
    wanted = [doc(f"d-{n}", f"dev-{n:08x}") for n in range(20)]
    wanted[7] = doc("taken", "dev-00000107")  # a name held already
    wanted[12] = doc("d-3", "dev-0000010c")  # a name another member of the group takes
    done = await asyncio.gather(*(storage.create("devices", d) for d in wanted),
                                return_exceptions=True)
    refused = [n for n, d in enumerate(done) if isinstance(d, AlreadyExists)]
    # 3 and 12 race for "d-3": which one wins depends on how the thread groups them
    assert refused in ([7, 12], [3, 7]), refused
    created = {d["metadata"]["uid"]: int(d["metadata"]["resourceVersion"])
               for d in done if not isinstance(d, BaseException)}
    assert len(created) == 18
    logged = {c.document["metadata"]["uid"]: c.revision
              for c in await storage.changes("devices", after=1) if c.type == "ADDED"}
    assert logged == created
    assert await asyncio.wait_for(storage.latest("devices"), 5) >= max(created.values())
    names = sorted(d["metadata"]["name"] for d in await storage.list("devices"))
    assert names == sorted(["taken", *(f"d-{n}" for n in range(20) if n not in (7, 12))])
    await storage.close()


async def test_a_big_batch_refused_midway_leaves_none_of_it(tmp_path):
    """A batch big enough to be written on the batch threads, two of its members sharing
    a name: refused as a whole, nothing of it stays, and no revision is left waiting."""
    storage = FileStorage(tmp_path)
    items = [(doc(f"d-{n}", f"dev-{n:08x}"), None, None) for n in range(100)]
    items[90] = (doc("d-30", "dev-0000005a"), None, None)
    with pytest.raises(AlreadyExists):
        await storage._run(storage._create_many_sync, "devices", items)
    assert await storage.list("devices") == []
    assert sorted(p.name for p in (tmp_path / "devices").iterdir()
                  if not p.name.startswith(".")) == []  # no document, no name link
    counter = await asyncio.wait_for(storage.latest("devices"), 5)
    assert counter >= 100
    changes = await storage.changes("devices", after=0, limit=1000)
    added = {c.document["metadata"]["uid"] for c in changes if c.type == "ADDED"}
    deleted = {c.document["metadata"]["uid"] for c in changes if c.type == "DELETED"}
    assert added == deleted  # what watchers saw come, they saw go
    await storage.close()


async def test_a_big_group_of_creates_fails_on_its_own_on_the_batch_threads(tmp_path):
    """40 creates written together (more than `_PARALLEL_GROUP`: files written and placed
    on the batch threads): each refusal is its own, the log holds exactly the rest."""
    storage = FileStorage(tmp_path)
    await storage.create("devices", doc("taken", "dev-000000aa"))
    items = [("devices", doc(f"d-{n}", f"dev-{n:08x}"), None, None) for n in range(40)]
    items[7] = ("devices", doc("taken", "dev-00000107"), None, None)
    items[30] = ("devices", doc("d-3", "dev-0000011e"), None, None)  # d-3 twice
    items[33] = ("no such plural!", doc("d-33", "dev-00000121"), None, None)
    done = await storage._run(storage._create_each_sync, items)
    refused = {n for n, d in enumerate(done) if isinstance(d, BaseException)}
    assert 7 in refused and 33 in refused and len(refused & {3, 30}) == 1
    assert len(refused) == 3
    created = {d["metadata"]["uid"]: int(d["metadata"]["resourceVersion"])
               for d in done if not isinstance(d, BaseException)}
    logged = {c.document["metadata"]["uid"]: c.revision
              for c in await storage.changes("devices", after=1) if c.type == "ADDED"}
    assert logged == created and len(created) == 37
    assert await asyncio.wait_for(storage.latest("devices"), 5) >= max(created.values())
    await storage.close()


async def test_a_create_whose_name_lock_is_held_elsewhere_holds_up_no_other(tmp_path):
    """The create thread puts off a create whose name lock another process holds and goes
    on with the rest; the put-off create is placed once the lock is free."""
    import fcntl
    import os
    import zlib

    storage = FileStorage(tmp_path)
    await storage.create("devices", doc("first", "dev-000000aa"))
    stripe = zlib.crc32(b"held") % 64
    other = next(f"free-{n}" for n in range(100) if zlib.crc32(f"free-{n}".encode()) % 64
                 != stripe)
    fd = os.open(tmp_path / "devices" / ".locks" / f"n{stripe:02d}", os.O_RDWR | os.O_CREAT)
    fcntl.flock(fd, fcntl.LOCK_EX)  # as another process would: its own open file
    try:
        held = asyncio.create_task(storage.create("devices", doc("held", "dev-000000bb")))
        await asyncio.sleep(0.05)
        free = await asyncio.wait_for(storage.create("devices", doc(other, "dev-000000cc")),
                                      10)
        assert free["metadata"]["name"] == other
        assert not held.done()
    finally:
        os.close(fd)  # lets the lock go
    stored = await asyncio.wait_for(held, 10)
    logged = [c.document["metadata"]["name"] for c in await storage.changes("devices", 0)]
    assert sorted(logged) == sorted(["first", "held", other])
    assert stored["metadata"]["name"] == "held"
    await storage.close()


async def test_a_big_batch_meeting_a_taken_name_leaves_it_to_its_holder(tmp_path):
    """Placed with each thread holding its stripes' name locks: a name held already
    refuses the batch, its holder keeps it, and no lock stays held (the same batch goes
    through afterwards, each name pointing at its own document)."""
    storage = FileStorage(tmp_path)
    holder = await storage.create("devices", doc("d-50", "dev-000000ff"))
    items = [(doc(f"d-{n}", f"dev-{n:08x}"), None, None) for n in range(100)]
    with pytest.raises(AlreadyExists):
        await storage._run(storage._create_many_sync, "devices", items)
    assert await storage.list("devices") == [holder]
    await storage.delete("devices", "dev-000000ff")
    created = await storage._run(storage._create_many_sync, "devices", items)
    for n in (0, 50, 99):
        assert await storage.get_by_name("devices", f"d-{n}") == created[n]
    assert len(await storage.list("devices")) == 100
    await storage.close()
