"""The file backend's change log: its files, writers in flight, crashed writers, old data
dirs. What every backend does is in test_storage_changes.py.

A crashed writer is a real one: another process whose creates wait at name locks this test
holds, each with its revision taken, killed with SIGKILL (`kill_writers_in_flight`)."""

import asyncio
import json
import os
import time

import pytest

from fabrica.storage import AlreadyExists, BulkItem, FileStorage, Gone
from fabrica.storage.file import _writers
from tests._support.storage import (
    die_after_document,
    die_linking_batch,
    die_linking_batch_before_documents,
    kill_delete_in_flight,
    kill_writers_in_flight,
    name_locks_held,
    run_and_die,
    wait_for_counter,
)
from tests._support.storage import short_doc as doc
from tests._support.wait import eventually


def change_file(tmp_path, revision: int):
    return tmp_path / "devices" / ".changes" / f"{revision:020d}.json"


async def test_one_file_per_change_beside_the_documents(tmp_path):
    storage = FileStorage(tmp_path)
    created = await storage.create("devices", doc("a", "dev-0000000a"))
    removed = await storage.delete("devices", "dev-0000000a")
    assert json.loads(change_file(tmp_path, 1).read_text()) == {"type": "ADDED",
                                                                "document": created}
    assert json.loads(change_file(tmp_path, 2).read_text()) == {"type": "DELETED",
                                                                "document": removed}
    assert removed["metadata"]["resourceVersion"] == "2"


async def test_a_failed_write_leaves_a_skip_marker_not_a_hole(tmp_path):
    storage = FileStorage(tmp_path, change_wait=3600)  # a hole would block for an hour
    await storage.create("devices", doc("a", "dev-0000000a"))
    with pytest.raises(AlreadyExists):
        await storage.create("devices", doc("a", "dev-0000000b"))  # took revision 2
    assert json.loads(change_file(tmp_path, 2).read_text()) == {"type": "SKIP"}
    third = await storage.create("devices", doc("c", "dev-0000000c"))
    assert [c.document for c in await storage.changes("devices", after=1)] == [third]
    assert await storage.latest("devices") == 3


async def test_failed_writes_at_the_end_of_the_log_make_no_reader_wait(tmp_path):
    """Skip markers are readable revisions: a reader after which only failed writes came
    gets [] at once (it used to wait the whole change_wait for a writer that is none)."""
    storage = FileStorage(tmp_path, change_wait=3600)
    await storage.create("devices", doc("a", "dev-0000000a"))
    for uid in ("dev-0000000b", "dev-0000000c"):
        with pytest.raises(AlreadyExists):
            await storage.create("devices", doc("a", uid))  # revisions 2 and 3: skips
    assert await asyncio.wait_for(storage.changes("devices", after=1), 10) == []
    assert await storage.latest("devices") == 3


async def test_readers_wait_for_a_writer_in_flight(tmp_path):
    storage = FileStorage(tmp_path, change_wait=3600)
    first = await storage.create("devices", doc("a", "dev-0000000a"))
    # taken by a live writer (this process: it holds the revision's lock), not yet written
    in_flight = str(storage._changes.allocate(tmp_path / "devices", "0"))
    # written and logged, not answered: an answer waits for the writer in flight
    later = storage._create_sync("devices", doc("b", "dev-0000000b"))
    assert [c.document for c in await storage.changes("devices", after=0)] == [first]
    assert storage._changes.latest(tmp_path / "devices") == 1  # readable: never past it
    waiting = asyncio.create_task(storage.changes("devices", after=1))
    # A read after `later` was acknowledged must show it: `latest` waits for the writer
    # in flight rather than answer 1, the revision before `later`.
    latest = asyncio.create_task(storage.latest("devices"))
    await asyncio.sleep(0.05)  # kept: proves neither answers while the writer is in flight
    assert not waiting.done() and not latest.done()
    late = {**doc("z", "dev-000000ff"), "metadata": {
        **doc("z", "dev-000000ff")["metadata"], "resourceVersion": in_flight}}
    storage._changes.record(tmp_path / "devices", int(in_flight), "ADDED", late)
    assert [c.document for c in await waiting] == [late, later]
    assert await latest == 3


@pytest.mark.parametrize("write", ["create", "update", "delete", "write_batch"])
async def test_a_write_is_answered_only_once_every_earlier_revision_is_logged(tmp_path,
                                                                            write):
    """Revisions are taken before the slow part of a write, so a later one can be done
    first. It is answered only when the log holds every revision before its own: else a
    client could act on its answer and then miss the earlier write. The model check found
    that: a create waiting for its group's sync was numbered before a write already
    answered, and a delete sent after that answer got 404 for the name it was creating."""
    storage = FileStorage(tmp_path, change_wait=3600)
    a = await storage.create("devices", doc("a", "dev-0000000a"))
    other = FileStorage(tmp_path)  # another process's writer, still placing its document
    in_flight = other._changes.allocate(tmp_path / "devices", "0")
    calls = {
        "create": lambda: storage.create("devices", doc("b", "dev-0000000b")),
        "update": lambda: storage.update("devices", {**a, "spec": {"x": 1}}, "1"),
        "delete": lambda: storage.delete("devices", "dev-0000000a"),
        "write_batch": lambda: storage.write_batch(
            "devices", [BulkItem(doc("b", "dev-0000000b"))], mode="create"),
    }
    answer = asyncio.create_task(calls[write]())
    await eventually(lambda: change_file(tmp_path, in_flight + 1).exists())  # done, logged
    await asyncio.sleep(0.05)  # kept: proves it is NOT answered while the writer is at work
    assert not answer.done()
    late = {**doc("z", "dev-000000ff"), "metadata": {
        **doc("z", "dev-000000ff")["metadata"], "resourceVersion": str(in_flight)}}
    other._changes.record(tmp_path / "devices", in_flight, "ADDED", late)
    other._changes.writers.release(tmp_path / "devices", in_flight)
    written = await answer
    written = written[0] if isinstance(written, list) else written
    assert written["metadata"]["resourceVersion"] == str(in_flight + 1)


async def test_a_writer_stuck_past_the_change_wait_holds_answers_up_no_longer(tmp_path,
                                                                              caplog):
    """A frozen process sharing the data dir must not stop every other writer's answers:
    past the change wait they are answered, and the stuck writer is logged (its hole
    stays: it lives, and may yet finish)."""
    storage = FileStorage(tmp_path, change_wait=0.2)
    await storage.create("devices", doc("a", "dev-0000000a"))
    other = FileStorage(tmp_path)
    in_flight = other._changes.allocate(tmp_path / "devices", "0")
    later = await asyncio.wait_for(storage.create("devices", doc("b", "dev-0000000b")), 30)
    assert later["metadata"]["resourceVersion"] == str(in_flight + 1)
    assert f"still at work after 0.2 s (revision {in_flight})" in caplog.text
    assert storage._changes.latest(tmp_path / "devices") == in_flight - 1


async def test_a_write_after_a_dead_writers_hole_is_answered_at_once(tmp_path):
    """The wait for earlier revisions settles a dead writer's hole, as readers do."""
    await FileStorage(tmp_path).create("devices", doc("a", "dev-0000000a"))
    holes = kill_writers_in_flight(tmp_path, "devices", 3)
    storage = FileStorage(tmp_path, change_wait=3600)
    later = await asyncio.wait_for(storage.create("devices", doc("b", "dev-0000000b")), 30)
    assert later["metadata"]["resourceVersion"] == str(holes[-1] + 1)
    assert storage._changes.gone_writers == 3


async def test_a_hole_given_up_while_the_reader_checks_is_read_past(tmp_path, monkeypatch):
    # Where the kernel cannot tell whether a writer lives, holes are given up after the
    # wait. A loaded machine: the reader finds the hole still young, then the check of
    # whether anyone is in flight comes late enough to give the hole up. It used to answer
    # [] with the change after the hole readable (a flake, 2 runs in 15).
    monkeypatch.setattr(_writers, "_SUPPORTED", False)
    storage = FileStorage(tmp_path, change_wait=0.1)
    await storage.create("devices", doc("a", "dev-0000000a"))
    storage._changes.allocate(tmp_path / "devices", "0")  # its writer dies before its change
    later = storage._create_sync("devices", doc("b", "dev-0000000b"))  # (not answered yet)
    assert storage._changes.latest(tmp_path / "devices") == 1  # the hole is seen from now on
    checked = storage._changes.latest

    def late_check(directory):
        time.sleep(0.15)
        return checked(directory)

    monkeypatch.setattr(storage._changes, "latest", late_check)
    assert [c.document for c in await storage.changes("devices", after=1)] == [later]


async def test_writers_killed_mid_write_are_skipped_at_once(tmp_path, caplog):
    """A kill -9 with 32 writes in flight: each hole's writer holds no lock, so the first
    look passes them all (with an hour's wait configured, only the locks can tell). They
    used to be waited for one after another, 3 s each: 96 s before the next read."""
    first = await FileStorage(tmp_path).create("devices", doc("a", "dev-0000000a"))
    holes = kill_writers_in_flight(tmp_path, "devices", 32)
    storage = FileStorage(tmp_path, change_wait=3600)  # a restarted process
    later = await storage.create("devices", doc("b", "dev-0000000b"))
    assert int(later["metadata"]["resourceVersion"]) == holes[-1] + 1
    assert await storage.latest("devices") == holes[-1] + 1  # one look, no hole waited for
    assert [c.document for c in await storage.changes("devices", after=1)] == [later]
    assert (storage._changes.gone_writers, storage._changes.timed_out) == (32, 0)
    assert caplog.text.count("its writer is gone") == 32
    assert [d["metadata"]["name"] for d in await storage.list("devices")] == ["a", "b"]
    assert first in [d for d in await storage.list("devices")]
    # The holes are marked for everyone: another process reads straight past them.
    other = FileStorage(tmp_path, change_wait=3600)
    assert await other.changes("devices", after=1) == [
        c for c in await storage.changes("devices", after=1)]
    assert other._changes.gone_writers == 0


async def test_a_live_writer_of_another_process_is_waited_for(tmp_path):
    """Its lock says it lives: readers never skip it, however long it takes."""
    storage = FileStorage(tmp_path, change_wait=0)  # (the timed give-up would be at once)
    await storage.create("devices", doc("a", "dev-0000000a"))
    writer = FileStorage(tmp_path)  # another process's view: its own lock descriptions
    in_flight = writer._changes.allocate(tmp_path / "devices", "0")
    later = storage._create_sync("devices", doc("b", "dev-0000000b"))  # (not answered yet)
    assert storage._changes.latest(tmp_path / "devices") == 1
    assert storage._changes.changes(tmp_path / "devices", "devices", 1, 10) == []
    latest = asyncio.create_task(storage.latest("devices"))
    await asyncio.sleep(0.05)  # kept: proves it does NOT answer while the writer lives
    assert not latest.done()  # (it would answer 1: without `later`, written before it)
    late = {**doc("z", "dev-000000ff"), "metadata": {
        **doc("z", "dev-000000ff")["metadata"], "resourceVersion": str(in_flight)}}
    writer._changes.record(tmp_path / "devices", in_flight, "ADDED", late)
    writer._changes.writers.release(tmp_path / "devices", in_flight)
    assert await latest == 3
    assert [c.document for c in await storage.changes("devices", after=1)] == [late, later]
    assert storage._changes.gone_writers == 0


async def test_without_writer_locks_a_hole_is_skipped_after_the_wait(tmp_path, caplog,
                                                                    monkeypatch):
    """Where the kernel has no open file description locks: the timed wait."""
    monkeypatch.setattr(_writers, "_SUPPORTED", False)
    storage = FileStorage(tmp_path, change_wait=0.1)
    await storage.create("devices", doc("a", "dev-0000000a"))
    storage._changes.allocate(tmp_path / "devices", "0")  # its writer dies before its change
    later = storage._create_sync("devices", doc("b", "dev-0000000b"))  # (not answered yet)
    assert storage._changes.latest(tmp_path / "devices") == 1
    assert [c.document for c in await storage.changes("devices", after=1)] == [later]
    assert "never appeared" in caplog.text and storage._changes.timed_out == 1
    assert await storage.latest("devices") == 3
    # The hole is marked for everyone: another process does not wait again.
    other = FileStorage(tmp_path, change_wait=3600)
    assert await other.latest("devices") == 3
    assert [c.document for c in await other.changes("devices", after=1)] == [later]


async def test_an_old_data_dir_starts_its_log_at_its_newest_version(tmp_path):
    (tmp_path / "devices").mkdir()
    for n, version in ((10, "5"), (11, "9")):
        old = doc(f"d-{n}", f"dev-{n:08x}")
        old["metadata"]["resourceVersion"] = version
        (tmp_path / "devices" / f"dev-{n:08x}.json").write_text(json.dumps(old))
    (tmp_path / "devices" / ".revision").write_text(f"{9:020d}")
    storage = FileStorage(tmp_path)
    assert await storage.horizon("devices") == 9
    assert await storage.latest("devices") == 9
    assert await storage.changes("devices", after=9) == []
    with pytest.raises(Gone):
        await storage.changes("devices", after=5)
    new = await storage.create("devices", doc("new", "dev-0000000c"))
    assert new["metadata"]["resourceVersion"] == "10"
    assert [c.document for c in await storage.changes("devices", after=9)] == [new]


async def test_automatic_compaction_deletes_old_change_files(tmp_path):
    storage = FileStorage(tmp_path, change_history=20)
    for n in range(50):
        await storage.create("devices", doc(f"d-{n}", f"dev-{n:08x}"))
    names = os.listdir(tmp_path / "devices" / ".changes")
    assert 20 <= len([n for n in names if n.endswith(".json")]) <= 22
    assert await storage.horizon("devices") >= 50 - 22


async def test_a_create_racing_a_delete_of_its_name_is_logged_after_the_delete(tmp_path):
    """A create takes its revision before its name's lock: when a delete of that name,
    numbered after it, lets the name go first, the create is numbered again, so the log
    never holds the name twice at once. It used to log the create first (and the watch
    cache then answered 500 on every list)."""
    storage = FileStorage(tmp_path)
    old = await storage.create("devices", doc("n", "dev-0000000a"))
    directory = tmp_path / "devices"
    with name_locks_held(directory):
        create = asyncio.create_task(storage.create("devices", doc("n", "dev-0000000b")))
        await asyncio.to_thread(wait_for_counter, directory, 2)  # it waits for the name
        delete = asyncio.create_task(storage.delete("devices", "dev-0000000a"))
        await asyncio.to_thread(wait_for_counter, directory, 3)
        # the delete removed its document and waits for the name
        await eventually(lambda: not (directory / "dev-0000000a.json").exists())
    removed, created = await delete, await create
    assert int(removed["metadata"]["resourceVersion"]) == 3
    assert int(created["metadata"]["resourceVersion"]) == 4  # not 2
    logged = await storage.changes("devices", after=0)
    assert [(c.type, c.document["metadata"]["uid"]) for c in logged] == [
        ("ADDED", old["metadata"]["uid"]), ("DELETED", "dev-0000000a"),
        ("ADDED", "dev-0000000b")]
    assert await storage.get_by_name("devices", "n") == created


async def test_a_delete_killed_after_removing_its_document_is_logged(tmp_path):
    """A writer that dies with its write in effect (the document gone) but its change not
    in the log: its change goes in, so the log and the documents agree (a watcher from
    before would otherwise keep the resource for ever). It used to be skipped."""
    storage = FileStorage(tmp_path)
    created = await storage.create("devices", doc("a", "dev-0000000a"))
    kill_delete_in_flight(tmp_path, "devices", "dev-0000000a")
    other = FileStorage(tmp_path, change_wait=3600)
    logged = await other.changes("devices", after=1)
    assert [(c.revision, c.type, c.document["metadata"]["uid"]) for c in logged] == [
        (2, "DELETED", "dev-0000000a")]
    assert logged[0].document["spec"] == created["spec"]
    assert await other.list("devices") == []
    again = await other.create("devices", doc("a", "dev-0000000b"))  # its name is free
    assert [c.document for c in await other.changes("devices", after=2)] == [again]
    assert not [n for n in os.listdir(tmp_path / "devices" / ".changes")
                if n.startswith(".tmp-")]  # the dead writer's prepared change is gone


async def test_an_update_killed_with_its_document_in_place_is_logged(tmp_path):
    storage = FileStorage(tmp_path)
    await storage.create("devices", doc("a", "dev-0000000a"))
    run_and_die(die_after_document, str(tmp_path), "devices", "dev-0000000a", {"port": 1})
    assert (await storage.get("devices", "dev-0000000a"))["spec"] == {"port": 1}
    logged = await storage.changes("devices", after=1)
    assert [(c.revision, c.type, c.document["spec"]) for c in logged] == [
        (2, "MODIFIED", {"port": 1})]


async def test_a_write_over_a_dead_writers_document_logs_that_write_first(tmp_path):
    """The next write of the resource replaces the dead writer's document, which alone
    shows that its write took effect: that write settles it before writing its own."""
    storage = FileStorage(tmp_path)
    await storage.create("devices", doc("a", "dev-0000000a"))
    run_and_die(die_after_document, str(tmp_path), "devices", "dev-0000000a", {"port": 1})
    current = await storage.get("devices", "dev-0000000a")
    await storage.update("devices", {**current, "spec": {"port": 2}}, "2")
    await storage.delete("devices", "dev-0000000a")
    logged = await storage.changes("devices", after=1)
    assert [(c.revision, c.type, c.document["spec"]) for c in logged] == [
        (2, "MODIFIED", {"port": 1}), (3, "MODIFIED", {"port": 2}),
        (4, "DELETED", {"port": 2})]


async def test_revisions_taken_together_are_consecutive_and_each_held(tmp_path):
    """`allocate_many`: one counter round trip, each revision's writer lock held as if
    taken alone (another process's reader sees each writer alive), the counter past all."""
    storage = FileStorage(tmp_path)
    await storage.create("devices", doc("a", "dev-0000000a"))
    directory = tmp_path / "devices"
    writer = FileStorage(tmp_path)  # another process's view: its own lock descriptions
    taken = writer._changes.allocate_many(directory, 5)
    assert list(taken) == [2, 3, 4, 5, 6]
    assert [storage._changes.writers.alive(directory, r) for r in taken] in (
        [True] * 5, [None] * 5)  # (None: a kernel without open file description locks)
    assert storage._changes.allocate(directory, "0") == 7
    for revision in taken:
        writer._changes.writers.release(directory, revision)
    assert {storage._changes.writers.alive(directory, r) for r in taken} <= {False, None}


def batch_docs(count: int, start: int = 0x100) -> list:
    return [(doc(f"b-{n}", f"dev-{start + n:08x}"), None, None) for n in range(count)]


async def test_a_big_batch_logs_its_changes_in_one_file_linked_at_each_revision(tmp_path):
    """create_many's changes: one file, a hard link to it per revision (one new inode per
    document instead of two), each read as a change of its own."""
    storage = FileStorage(tmp_path)
    first = await storage.create("devices", doc("a", "dev-0000000a"))  # a single file
    created = storage._create_many_sync("devices", batch_docs(100))
    entries = [change_file(tmp_path, r) for r in range(2, 102)]
    assert len({os.stat(e).st_ino for e in entries}) == 1
    assert os.stat(entries[0]).st_nlink == 100  # its temp name is gone
    assert not [n for n in os.listdir(tmp_path / "devices" / ".changes")
                if n.startswith(".tmp-")]
    later = await storage.create("devices", doc("z", "dev-0000000f"))
    logged = await storage.changes("devices", after=0)
    assert [c.document for c in logged] == [first, *created, later]
    assert [c.revision for c in logged] == list(range(1, 103))
    assert {c.type for c in logged} == {"ADDED"}
    paged, after = [], 0  # pages that begin and end inside the batch
    while page := await storage.changes("devices", after=after, limit=7):
        paged += page
        after = page[-1].revision
    assert paged == logged
    assert await FileStorage(tmp_path).changes("devices", after=50, limit=3) == logged[50:53]


async def test_a_batch_file_is_parsed_once_a_read(tmp_path, monkeypatch):
    from fabrica.storage.file import _changes

    storage = FileStorage(tmp_path)
    storage._create_many_sync("devices", batch_docs(300))
    parses = []
    parse = _changes._batch_lines
    monkeypatch.setattr(_changes, "_batch_lines", lambda data: parses.append(1) or parse(data))
    assert len(await storage.changes("devices", after=0, limit=1000)) == 300
    assert len(parses) == 1


async def test_a_skip_marker_inside_a_batch_is_read_as_no_change(tmp_path):
    """A batch refused midway leaves skip markers (files of their own) among its links."""
    storage = FileStorage(tmp_path, change_wait=3600)
    await storage.create("devices", doc("b-70", "dev-0000000a"))  # the batch meets it
    with pytest.raises(AlreadyExists):
        storage._create_many_sync("devices", batch_docs(100))
    logged = await storage.changes("devices", after=1)
    # Whatever the batch placed before it met the name is logged, and removed again
    added = {c.document["metadata"]["uid"] for c in logged if c.type == "ADDED"}
    deleted = {c.document["metadata"]["uid"] for c in logged if c.type == "DELETED"}
    assert added == deleted
    assert [d["metadata"]["name"] for d in await storage.list("devices")] == ["b-70"]
    assert await storage.latest("devices") == await storage.latest("devices") >= 101
    assert not [n for n in os.listdir(tmp_path / "devices" / ".changes")
                if n.startswith(".tmp-")]


async def test_a_batch_killed_while_linking_its_changes_is_logged_whole(tmp_path, caplog):
    """kill -9 with every document of a batch in place and 40 of its 100 changes linked:
    the next reader finds the prepared batch file, sees each document took effect and
    links the other 60; the log and the documents agree, and nothing waits."""
    storage = FileStorage(tmp_path)
    await storage.create("devices", doc("a", "dev-0000000a"))
    run_and_die(die_linking_batch, str(tmp_path), "devices", 100, 40)
    changes = tmp_path / "devices" / ".changes"
    assert [n for n in os.listdir(changes) if n.startswith(".tmp-")]  # the prepared batch
    other = FileStorage(tmp_path, change_wait=3600)  # a restarted process
    logged = await other.changes("devices", after=1)
    assert [c.revision for c in logged] == list(range(2, 102))
    assert sorted(c.document["metadata"]["name"] for c in logged) == sorted(
        f"b-{n}" for n in range(100))
    assert len(await other.list("devices")) == 101
    assert other._changes.gone_writers == 60 and other._changes.timed_out == 0
    assert caplog.text.count("its write took effect") == 60
    # and the log agrees with what a reader from scratch sees, in another process too
    assert await FileStorage(tmp_path).changes("devices", after=1) == logged


async def test_a_batch_killed_before_its_documents_moved_is_skipped(tmp_path):
    """kill -9 after the batch's changes were prepared, before any document was linked:
    none of it took effect, every revision gets a skip marker, the names are free."""
    run_and_die(die_linking_batch_before_documents, str(tmp_path), "devices", 80)
    other = FileStorage(tmp_path, change_wait=3600)
    assert await other.changes("devices", after=0) == []
    assert await other.latest("devices") == 80
    assert await other.list("devices") == []
    again = await other.create("devices", doc("b-0", "dev-0000000a"))
    assert [c.document for c in await other.changes("devices", after=0)] == [again]


async def test_compaction_removes_a_batch_with_its_last_link(tmp_path):
    storage = FileStorage(tmp_path, change_history=0)
    storage._create_many_sync("devices", batch_docs(100))
    await storage.compact("devices", 30)
    assert await storage.horizon("devices") == 70
    logged = await storage.changes("devices", after=70)
    assert [c.revision for c in logged] == list(range(71, 101))
    await storage.compact("devices", 0)
    assert [n for n in os.listdir(tmp_path / "devices" / ".changes")] == []
