"""What only the file backend needs: paths, temp files, its name index, threads and
processes sharing a data dir. The storage contract itself is in test_storage_contract.py."""

import asyncio
import json
import multiprocessing
import os
import time

import pytest

from fabrica.storage import AlreadyExists, BulkItem, Conflict, FileStorage, NotFound
from fabrica.storage.file import _storage
from tests._support.storage import short_doc as doc
from tests._support.storage import uid


@pytest.fixture
def storage(tmp_path):
    return FileStorage(tmp_path)


async def test_one_file_per_document_and_a_revision_counter(storage, tmp_path):
    created = await storage.create("devices", doc("web-01", "dev-0000000a", port=1))
    assert created["metadata"]["resourceVersion"] == "1"
    stored = tmp_path / "devices" / "dev-0000000a.json"
    assert json.loads(stored.read_text()) == created
    updated = await storage.update("devices", doc("web-01", "dev-0000000a", port=2), "1")
    assert updated["metadata"]["resourceVersion"] == "2"
    await storage.delete("devices", "dev-0000000a")
    assert not stored.exists()


@pytest.mark.parametrize("bad", ["../../etc/passwd", "..", "dev-0000000a/../../x", "/etc/passwd",
                                 "dev-zzzzzzzz", "DEV-0000000A", "dev-0000000a.json"])
async def test_ids_never_address_paths(storage, bad):
    with pytest.raises(NotFound):
        await storage.get("devices", bad)
    with pytest.raises(NotFound):
        await storage.get_by_name("devices", bad)
    with pytest.raises(NotFound):
        await storage.delete("devices", bad)


async def test_stale_name_entry_from_a_crash_is_replaced(storage, tmp_path):
    # A crash between writing the name index entry and the document leaves an entry that
    # points at nothing; it must not block the name forever.
    await storage.create("devices", doc("other", "dev-0000000c"))
    os.symlink("dev-0000000f.json", tmp_path / "devices" / "@web")
    created = await storage.create("devices", doc("web", "dev-0000000a"))
    assert await storage.get_by_name("devices", "web") == created


async def test_leftover_temp_files_are_invisible(storage, tmp_path):
    await storage.create("devices", doc("a", "dev-0000000a"))
    (tmp_path / "devices" / ".tmp-dev-0000000b.json-1234").write_text("{torn")
    assert len(await storage.list("devices")) == 1


async def test_documents_copied_in_by_hand_get_a_name_index(tmp_path):
    (tmp_path / "devices").mkdir()
    copied = doc("copied", "dev-0000000a")
    copied["metadata"]["resourceVersion"] = "5"
    (tmp_path / "devices" / "dev-0000000a.json").write_text(json.dumps(copied))
    storage = FileStorage(tmp_path)
    assert (await storage.get_by_name("devices", "copied"))["metadata"]["uid"] == "dev-0000000a"
    with pytest.raises(AlreadyExists):
        await storage.create("devices", doc("copied", "dev-0000000b"))


async def test_concurrent_compare_and_swap_loses_no_write(storage):
    """40 writers at once: their writes run on the storage's thread pool in parallel."""
    await storage.create("devices", doc("a", "dev-0000000a", n=0))

    async def bump():
        while True:
            current = await storage.get("devices", "dev-0000000a")
            new = dict(current, spec={"n": current["spec"]["n"] + 1})
            try:
                await storage.update("devices", new, current["metadata"]["resourceVersion"])
                return
            except Conflict:
                continue

    await asyncio.gather(*(bump() for _ in range(40)))
    final = await storage.get("devices", "dev-0000000a")
    assert final["spec"]["n"] == 40
    assert final["metadata"]["resourceVersion"] == "41"


def _create_in_process(data_dir, index, barrier, results):
    storage = FileStorage(data_dir)
    barrier.wait()
    try:
        asyncio.run(storage.create("devices", doc("contested", f"dev-{index:08x}")))
        results.put("won")
    except AlreadyExists:
        results.put("lost")


def test_processes_sharing_a_data_dir_create_a_name_once(tmp_path):
    ctx = multiprocessing.get_context("spawn")
    barrier, results = ctx.Barrier(6), ctx.Queue()
    procs = [ctx.Process(target=_create_in_process, args=(tmp_path, i, barrier, results))
             for i in range(6)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(30)
    outcomes = sorted(results.get(timeout=5) for _ in procs)
    assert outcomes == ["lost"] * 5 + ["won"]
    files = [f for f in os.listdir(tmp_path / "devices") if f.endswith(".json")]
    assert len(files) == 1


async def test_name_links_are_inspectable(tmp_path):
    """``@NAME`` is the document itself (a hard link: no inode of its own), and stays so
    through updates."""
    storage = FileStorage(tmp_path)
    created = await storage.create("devices", doc("web-01", "dev-0000000a"))
    link = tmp_path / "devices" / "@web-01"
    document = tmp_path / "devices" / "dev-0000000a.json"
    assert os.stat(link).st_ino == os.stat(document).st_ino and not link.is_symlink()
    assert json.loads(link.read_text()) == created
    updated = await storage.update("devices", {**created, "spec": {"port": 2}}, "1")
    assert os.stat(link).st_ino == os.stat(document).st_ino
    assert json.loads(link.read_text()) == updated
    [batched] = storage._update_many_sync("devices", [{**updated, "spec": {"port": 3}}])
    assert json.loads(link.read_text()) == batched
    await storage.delete("devices", "dev-0000000a")
    assert not os.path.lexists(link)


async def test_a_name_lagging_behind_its_document_reads_the_document(tmp_path):
    """A crash between an update's rename and its name's re-pointing leaves the name on
    the old file: reads by name and pages see the document as it is."""
    storage = FileStorage(tmp_path)
    created = await storage.create("devices", doc("web-01", "dev-0000000a"))
    link = tmp_path / "devices" / "@web-01"
    old = tmp_path / "devices" / "old-copy"
    os.link(link, old)
    updated = await storage.update("devices", {**created, "spec": {"port": 2}}, "1")
    os.replace(old, link)  # the name as a crash would leave it
    assert json.loads(link.read_text()) == created
    assert await storage.get_by_name("devices", "web-01") == updated
    assert await storage.list("devices", limit=5) == [updated]
    with pytest.raises(AlreadyExists):
        await storage.create("devices", doc("web-01", "dev-0000000b"))
    assert json.loads(link.read_text()) == created  # (a refused create leaves it)


async def test_names_of_an_earlier_release_are_read_and_replaced(tmp_path):
    """Data dirs written before names were hard links have symbolic links to UID.json:
    they are read, followed by pages, let go by deletes, and re-pointed by updates."""
    storage = FileStorage(tmp_path)
    first = await storage.create("devices", doc("a", "dev-0000000a"))
    second = await storage.create("devices", doc("b", "dev-0000000b"))
    for name, owner in (("a", "dev-0000000a"), ("b", "dev-0000000b")):
        link = tmp_path / "devices" / f"@{name}"
        link.unlink()
        os.symlink(f"{owner}.json", link)
    reopened = FileStorage(tmp_path)
    assert await reopened.get_by_name("devices", "a") == first
    assert await reopened.list("devices", limit=10) == [first, second]
    updated = await reopened.update("devices", {**first, "spec": {"port": 1}}, "1")
    assert await reopened.get_by_name("devices", "a") == updated
    assert not (tmp_path / "devices" / "@a").is_symlink()  # re-pointed: a hard link now
    await reopened.delete("devices", "dev-0000000b")
    assert not os.path.lexists(tmp_path / "devices" / "@b")
    with pytest.raises(AlreadyExists):
        await reopened.create("devices", doc("a", "dev-0000000c"))


async def test_parallel_creates_of_distinct_names_all_land(tmp_path):
    """64 creates at once: they run on the storage's thread pool in parallel."""
    storage = FileStorage(tmp_path)
    await asyncio.gather(*(storage.create("devices", doc(f"n{i}", f"dev-{i:08x}"))
                           for i in range(64)))
    docs = await storage.list("devices")
    assert len(docs) == 64
    versions = [d["metadata"]["resourceVersion"] for d in docs]
    assert len(set(versions)) == 64  # never the same version twice in a collection


def count_reads(monkeypatch):
    """The paths of the documents the backend reads from now on."""
    read = []

    def counting(path):
        read.append(os.path.basename(path))
        return real(path)

    def counting_named(path):
        read.append(os.path.basename(path))
        return real_named(path)

    real, real_named = _storage.read_bytes, _storage.read_with_inode
    monkeypatch.setattr(_storage, "read_bytes", counting)
    monkeypatch.setattr(_storage, "read_with_inode", counting_named)
    return read


async def test_a_page_reads_only_its_own_documents(storage, monkeypatch):
    # A walk by pages must cost about one full list, not pages x the collection: a page
    # finds its names in the name index and reads only the documents it returns.
    for n in range(60):
        await storage.create("devices", doc(f"node-{n:02d}", f"dev-{n:08x}"))
    read = count_reads(monkeypatch)
    page = await storage.list("devices", limit=5, after="node-19")
    assert [d["metadata"]["name"] for d in page] == [f"node-{n}" for n in range(20, 25)]
    assert len(read) == 5
    read.clear()
    assert len(await storage.list("devices", after="node-49")) == 10
    assert len(read) == 10


async def test_a_page_skips_names_left_by_a_crash(storage, tmp_path):
    # A crash can leave a name link to no document (a create that died before its
    # document, a delete after it): the page is filled from the names that follow.
    for n in range(6):
        await storage.create("devices", doc(f"node-{n}", f"dev-{n:08x}"))
    os.symlink("dev-000000ff.json", tmp_path / "devices" / "@node-1a")
    (tmp_path / "devices" / "dev-00000002.json").unlink()
    page = await storage.list("devices", limit=3, after="node-0")
    assert [d["metadata"]["name"] for d in page] == ["node-1", "node-3", "node-4"]


async def test_a_page_of_documents_copied_in_by_hand(tmp_path):
    (tmp_path / "devices").mkdir()
    for n in range(3):
        copied = doc(f"copied-{n}", f"dev-{n:08x}")
        (tmp_path / "devices" / f"dev-{n:08x}.json").write_text(json.dumps(copied))
    page = await FileStorage(tmp_path).list("devices", limit=2)
    assert [d["metadata"]["name"] for d in page] == ["copied-0", "copied-1"]
    assert await FileStorage(tmp_path / "none").list("devices", limit=2) == []


async def test_a_walk_lists_a_directory_at_rest_once_and_sees_writes_after(
        storage, tmp_path, monkeypatch):
    for n in range(20):
        await storage.create("devices", doc(f"node-{n:02d}", f"dev-{n:08x}"))
    listed = []
    real = os.listdir
    monkeypatch.setattr(os, "listdir", lambda path=".": listed.append(path) or real(path))
    directory = tmp_path / "devices"
    os.utime(directory, (time.time() - 60, time.time() - 60))  # no write for a minute
    walked, after = [], None
    while page := await storage.list("devices", limit=3, after=after):
        walked += [d["metadata"]["name"] for d in page]
        after = walked[-1]
    assert walked == [f"node-{n:02d}" for n in range(20)] and len(listed) == 1
    await storage.create("devices", doc("node-99", "dev-00000099"))  # the mtime moves on
    await storage.delete("devices", "dev-00000013")
    page = await storage.list("devices", limit=3, after="node-18")
    assert [d["metadata"]["name"] for d in page] == ["node-99"]
    # Written just now: a write in the same clock tick could leave the same mtime behind,
    # so this listing is not kept; each page lists again until the directory rests.
    await storage.list("devices", limit=3, after="node-18")
    assert len(listed) == 3


def _updated(stored: dict, **spec) -> dict:
    return {**stored, "spec": spec}


async def test_a_batch_of_updates_writes_each_on_its_own_and_logs_each(storage, tmp_path):
    """Updates of many resources share their syncs; each is still checked on its own: a
    stale one is a `Conflict` and the others are written, each with its change logged."""
    created = [await storage.create("devices", doc(f"d-{n}", uid(n), port=n))
               for n in range(1, 101)]
    start = await storage.latest("devices")
    stale = {**created[40], "metadata": {**created[40]["metadata"], "resourceVersion": "1"}}
    items = [BulkItem(_updated(d, port=1000)) for d in created]
    items[40] = BulkItem(_updated(stale, port=1000))
    with pytest.raises(Conflict):
        await storage.write_batch("devices", items, mode="update")
    stored = {d["metadata"]["uid"]: d for d in await storage.list("devices")}
    assert stored[uid(41)] == created[40]
    assert sorted(n for n in range(1, 101) if stored[uid(n)]["spec"] == {"port": 1000}) == \
        [n for n in range(1, 101) if n != 41]
    changes = await storage.changes("devices", start, 1000)
    assert sorted(c.document["metadata"]["uid"] for c in changes) == \
        sorted(uid(n) for n in range(1, 101) if n != 41)
    assert {c.type for c in changes} == {"MODIFIED"}
    assert all(stored[c.document["metadata"]["uid"]] == c.document for c in changes)
    assert not [n for n in os.listdir(tmp_path / "devices") if n.startswith(".tmp")]
    # their changes share one file (a link each); the stale one's revision is a skip
    # marker or was never taken
    entries = [tmp_path / "devices" / ".changes" / f"{c.revision:020d}.json" for c in changes]
    assert len({os.stat(e).st_ino for e in entries}) == 1
    assert not [n for n in os.listdir(tmp_path / "devices" / ".changes") if n.startswith(".tmp")]

    again = await storage.write_batch(
        "devices", [BulkItem(_updated(stored[uid(n)], port=7)) for n in (1, 2)], mode="update")
    assert [d["spec"] for d in again] == [{"port": 7}, {"port": 7}]
    assert [int(d["metadata"]["resourceVersion"]) for d in again] == \
        [c.revision + 1 for c in changes[-1:]] + [changes[-1].revision + 2]


async def test_a_batch_updating_one_resource_twice_is_a_conflict_for_the_second(storage):
    """Both were read at one version: the second must not overwrite the first unseen."""
    created = await storage.create("devices", doc("d-1", uid(1), port=1))
    with pytest.raises(Conflict):
        await storage.write_batch("devices", [BulkItem(_updated(created, port=2)),
                                              BulkItem(_updated(created, port=3))],
                                  mode="update")
    assert [d["spec"] for d in await storage.list("devices")] in ([{"port": 2}], [{"port": 3}])
