"""What only the file backend needs: paths, temp files, its name index, threads and
processes sharing a data dir. The storage contract itself is in test_storage_contract.py."""

import asyncio
import json
import multiprocessing
import os

import pytest

from fabrica.storage import AlreadyExists, Conflict, FileStorage, NotFound
from tests._support.storage import short_doc as doc


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
    storage = FileStorage(tmp_path)
    await storage.create("devices", doc("web-01", "dev-0000000a"))
    link = tmp_path / "devices" / "@web-01"
    assert os.readlink(link) == "dev-0000000a.json"
    assert json.loads(link.read_text())["metadata"]["uid"] == "dev-0000000a"


async def test_parallel_creates_of_distinct_names_all_land(tmp_path):
    """64 creates at once: they run on the storage's thread pool in parallel."""
    storage = FileStorage(tmp_path)
    await asyncio.gather(*(storage.create("devices", doc(f"n{i}", f"dev-{i:08x}"))
                           for i in range(64)))
    docs = await storage.list("devices")
    assert len(docs) == 64
    versions = [d["metadata"]["resourceVersion"] for d in docs]
    assert len(set(versions)) == 64  # never the same version twice in a collection
