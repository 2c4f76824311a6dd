"""`BulkStorage` on every backend: batches keep what import must keep, create refuses a
taken uid or name (a SQL batch wholly), upsert and removals, and export snapshots."""

from __future__ import annotations

import asyncio

import pytest

from fabrica.resource import unique_key
from fabrica.storage import AlreadyExists, BulkItem, BulkStorage, NotFound
from tests._support.storage import doc, uid

pytestmark = pytest.mark.asyncio


class Collected:
    """A `SnapshotWriter` keeping what it is given."""

    def __init__(self) -> None:
        self.counts: dict[str, int] = {}
        self.revisions: dict[str, int] = {}
        self.docs: list[tuple[str, dict, list]] = []

    def start(self, counts, revisions):
        self.counts, self.revisions = counts, revisions

    def document(self, collection, document, history):
        self.docs.append((collection, document, history))


def imported(name: str, n: int, generation: int = 3) -> dict:
    d = doc(name, uid(n), {"env": "prod"}, port=n)
    d["metadata"].update(createdAt="2020-01-01T00:00:00Z", generation=generation,
                         resourceVersion="999")
    return d


async def test_a_batch_keeps_uids_names_created_at_and_generation(storage):
    assert isinstance(storage, BulkStorage)
    history = [{"versionId": "v1", "spec": {"port": 1}}, {"versionId": "v2", "spec": {}}]
    items = [BulkItem(imported(f"d-{n}", n), history if n == 0 else []) for n in range(5)]
    stored = await storage.write_batch("devices", items, mode="create")
    assert len(stored) == 5
    got = await storage.get("devices", uid(0))
    assert got["metadata"]["createdAt"] == "2020-01-01T00:00:00Z"
    assert got["metadata"]["generation"] == 3 and got["metadata"]["name"] == "d-0"
    assert got["metadata"]["resourceVersion"] != "999"
    assert [v["versionId"] for v in await storage.list_versions("devices", uid(0))] == [
        "v1", "v2"]
    assert (await storage.list("devices", selector=None))[4]["spec"] == {"port": 4}
    log = await storage.changes("devices", await storage.horizon("devices"))
    assert sorted(c.document["metadata"]["uid"] for c in log) == [uid(n) for n in range(5)]
    assert {c.type for c in log} == {"ADDED"}


async def test_create_refuses_a_taken_name_and_sql_writes_none_of_the_batch(storage):
    await storage.write_batch("devices", [BulkItem(imported("taken", 1))], mode="create")
    batch = [BulkItem(imported("fresh", 2)), BulkItem(imported("taken", 3))]
    with pytest.raises(AlreadyExists) as caught:
        await storage.write_batch("devices", batch, mode="create")
    assert (caught.value.field, caught.value.value) == ("name", "taken")
    if storage.name != "file":  # one transaction: the fresh one went back too
        with pytest.raises(NotFound):
            await storage.get("devices", uid(2))


async def test_upsert_overwrites_by_uid_or_name_and_remove_deletes(storage):
    await storage.write_batch("devices", [BulkItem(imported("a", 1)), BulkItem(imported("b", 2)),
                                          BulkItem(imported("c", 3))], mode="create")
    again = imported("a", 1, generation=7)
    other = imported("b", 9)  # the name b, under another uid
    await storage.write_batch("devices", [BulkItem(again), BulkItem(other)], mode="upsert",
                              remove=[uid(3)])
    assert (await storage.get("devices", uid(1)))["metadata"]["generation"] == 7
    assert (await storage.get_by_name("devices", "b"))["metadata"]["uid"] == uid(9)
    for gone in (uid(2), uid(3)):
        with pytest.raises(NotFound):
            await storage.get("devices", gone)


async def test_export_gives_every_document_with_history_and_counts(storage):
    history = [{"versionId": "v1", "spec": {}}]
    await storage.write_batch("devices", [BulkItem(imported(f"d-{n}", n), history)
                                          for n in range(3)], mode="create")
    await storage.create("racks", doc("r-1", "rack-00000001"))
    out = Collected()
    await storage.export_snapshot(["devices", "racks", "empties"], out)
    assert out.counts == {"devices": 3, "racks": 1, "empties": 0}
    assert out.revisions["devices"] >= 3
    assert [(c, d["metadata"]["name"]) for c, d, _ in out.docs] == [
        ("devices", "d-0"), ("devices", "d-1"), ("devices", "d-2"), ("racks", "r-1")]
    assert out.docs[0][2] == [{"versionId": "v1", "spec": {}}]


async def test_export_while_writers_write_is_one_state(storage):
    """Updates run while the export reads: what it gives is the collection's state at
    the revision it names, rebuilt here from the change log."""
    await storage.write_batch("devices", [BulkItem(imported(f"d-{n:03d}", n))
                                          for n in range(200)], mode="create")
    stop = asyncio.Event()

    async def writer(offset: int) -> None:
        n = offset
        while not stop.is_set():
            current = await storage.get("devices", uid(n % 200))
            current["spec"] = {"port": current["spec"]["port"] + 1}
            try:
                await storage.update("devices", current, current["metadata"]["resourceVersion"])
            except Exception:
                pass
            if n % 7 == 0:
                victim = f"e-{offset}-{n}"
                made = await storage.create("devices", doc(victim, f"dev-f{offset}{n:07x}"))
                await storage.delete("devices", made["metadata"]["uid"])
            n += 3

    writers = [asyncio.create_task(writer(k)) for k in range(3)]
    await asyncio.sleep(0.05)
    out = Collected()
    await storage.export_snapshot(["devices"], out)
    stop.set()
    await asyncio.gather(*writers)
    revision = out.revisions["devices"]
    state: dict[str, dict] = {}
    logged: dict[int, dict] = {}
    after = await storage.horizon("devices")
    assert after == 0  # the whole log is there to rebuild from
    while True:
        page = await storage.changes("devices", after, 1000)
        for change in page:
            logged[change.revision] = change.document
            if change.revision <= revision:
                if change.type == "DELETED":
                    state.pop(change.document["metadata"]["uid"], None)
                else:
                    state[change.document["metadata"]["uid"]] = change.document
        if not page:
            break
        after = page[-1].revision
    exported = {d["metadata"]["uid"]: d for _, d, _ in out.docs}
    assert out.counts["devices"] == len(exported)
    for document in exported.values():  # each one a state the log recorded, by R
        version = int(document["metadata"]["resourceVersion"])
        assert version <= revision and logged[version] == document
    if storage.name in ("file", "sqlite"):  # numbers taken in commit order there
        assert exported == state


async def test_a_batch_holds_the_unique_keys_of_its_documents(storage):
    """Imported documents hold their unique values: a later create of a taken serial is
    refused naming the imported holder, and a batch whose key is taken writes none of it
    on SQL."""
    serial = "spec.serial"
    await storage.prepare_unique("devices", [serial])
    items = [BulkItem(serialed(f"d-{n}", n, f"S{n}"), [], {serial: unique_key([f"S{n}"])})
             for n in range(3)]
    await storage.write_batch("devices", items, mode="create")
    with pytest.raises(AlreadyExists) as refused:
        await storage.create("devices", doc("late", uid(9), serial="S1"),
                             unique={serial: unique_key(["S1"])})
    assert (refused.value.field, refused.value.holder) == (serial, uid(1))
    batch = [BulkItem(serialed("e-4", 4, "S4"), [], {serial: unique_key(["S4"])}),
             BulkItem(serialed("e-5", 5, "S2"), [], {serial: unique_key(["S2"])})]
    with pytest.raises(AlreadyExists) as refused:
        await storage.write_batch("devices", batch, mode="create")
    assert (refused.value.field, refused.value.holder) == (serial, uid(2))
    with pytest.raises(NotFound):  # every backend: files take back what they wrote
        await storage.get("devices", uid(4))
    await storage.create("devices", doc("e-4", uid(4), serial="S4"),
                         unique={serial: unique_key(["S4"])})


def serialed(name: str, n: int, serial: str) -> dict:
    d = imported(name, n)
    d["spec"]["serial"] = serial
    return d


async def test_a_batch_is_logged_between_single_writes_and_compacts(open_backend):
    """A batch's revisions (a block on SQL) sit between the writes before and after it:
    the log hands out every change once, in order, with no number twice; a batch that
    crosses compaction points leaves the history the log keeps."""
    storage = await open_backend(change_history=20)
    first = await storage.create("devices", doc("before", uid(100)))
    items = [BulkItem(imported(f"d-{n}", n)) for n in range(45)]
    stored = await storage.write_batch("devices", items, mode="create")
    after = await storage.create("devices", doc("after", uid(101)))
    versions = [int(d["metadata"]["resourceVersion"]) for d in stored]
    assert len(set(versions)) == 45
    assert int(first["metadata"]["resourceVersion"]) < min(versions)
    assert max(versions) < int(after["metadata"]["resourceVersion"])
    for d in stored[:3]:  # each row carries its own version
        got = await storage.get("devices", d["metadata"]["uid"])
        assert got["metadata"]["resourceVersion"] == d["metadata"]["resourceVersion"]
    latest = await storage.latest("devices")
    assert latest == int(after["metadata"]["resourceVersion"])
    horizon = await storage.horizon("devices")
    assert horizon > int(first["metadata"]["resourceVersion"])  # compacted meanwhile
    log = await storage.changes("devices", horizon)
    assert [c.revision for c in log] == sorted(c.revision for c in log)
    assert log[-1].document["metadata"]["name"] == "after"
    by_uid = {d["metadata"]["uid"]: d["metadata"]["resourceVersion"] for d in stored}
    assert all(by_uid[c.document["metadata"]["uid"]] == str(c.revision) for c in log[:-1])
