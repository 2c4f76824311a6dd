"""`WatchCache` over real storage (files, SQLite, PostgreSQL, MariaDB): watches are ordered,
gap-free and duplicate-free under concurrent writers in two "processes" (two stores, each
with its own storage object, on one data dir or database); resumes; 410s; label-filtered
watches; cached reads that see the other store's writes; and the memory bound."""

from __future__ import annotations

import asyncio
import json
import random
from collections.abc import AsyncIterator
from typing import Any

import pytest
from sqlalchemy import delete

from fabrica.resource import parse_selector
from fabrica.storage import (
    AlreadyExists,
    FileStorage,
    NotFound,
    SQLStorage,
    Storage,
    StoredChange,
)
from fabrica.storage.sql._schema import changes, collections, resources, revisions
from fabrica.store import ResourceStore, ResourceVersionTooLarge, WatchCache, Watcher
from fabrica.store._watch_objects import Entry, KindObjects
from tests._support.app import Device, DeviceSpec
from tests._support.sqldb import migrate, mysql_database, postgres_schema
from tests._support.wait import eventually

WEB = DeviceSpec(type="server", ip_address="10.0.0.1")
BACKENDS = ("file", "sqlite", "postgresql", "mariadb")


@pytest.fixture(scope="module")
def postgresql_url():
    with postgres_schema() as url:
        migrate(url)
        yield url


@pytest.fixture(scope="module")
def mariadb_url():
    with mysql_database() as url:
        migrate(url)
        yield url


def _empty(conn: Any) -> None:
    for table in (resources, revisions, changes, collections):
        conn.execute(delete(table))


class Process:
    """What one server process has: its storage object, its store and its cache."""

    def __init__(self, storage: Storage, **options: Any) -> None:
        self.storage = storage
        self.store = ResourceStore(storage, [Device])
        self.cache = WatchCache(storage, [Device], encode=self.store.wire,
                                render=self.store.render, poll_interval=0.05, **options)
        self.store.add_listener(self.cache.on_change)

    async def close(self) -> None:
        await self.cache.close()
        await self.storage.close()


@pytest.fixture
def database_url(request, tmp_path) -> str | None:
    """The test's database (None: the file backend), empty."""
    backend = getattr(request, "param", "file")
    if backend == "sqlite":
        url = f"sqlite:///{tmp_path}/watch.db"
        migrate(url)
        return url
    if backend in ("postgresql", "mariadb"):
        url = request.getfixturevalue(f"{backend}_url")

        async def empty() -> None:
            sql = SQLStorage(url)
            await sql._run(_empty, write=True)
            await sql.close()

        asyncio.run(empty())
        return url
    return None


@pytest.fixture
async def opener(database_url, tmp_path) -> AsyncIterator[Any]:
    """opener(**cache_options) → a new `Process` on the test's one data dir or database."""
    opened: list[Process] = []
    url = database_url

    def open_process(**options: Any) -> Process:
        storage = FileStorage(tmp_path / "data") if url is None else SQLStorage(url)
        process = Process(storage, **options)
        opened.append(process)
        return process

    yield open_process
    for process in opened:
        await process.close()


async def events(watcher: Watcher, until: Any = None, timeout: float = 10.0
                 ) -> list[dict[str, Any]]:
    """Events of `watcher` until `until(events)` holds (or the stream ends)."""
    got: list[dict[str, Any]] = []
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while until is None or not until(got):
        lines = await watcher.next(max(0.0, deadline - loop.time()))
        if lines is None:
            break
        got += [json.loads(line) for line in lines]
        if until is None and not lines:
            break
        if loop.time() >= deadline:
            raise AssertionError(f"timed out; got {[e['type'] for e in got]}")
    return got


def rv(event: dict[str, Any]) -> int:
    return int(event["object"]["metadata"]["resourceVersion"])


def apply(view: dict[str, int], event: dict[str, Any]) -> None:
    meta = event["object"]["metadata"]
    if event["type"] == "DELETED":
        view.pop(meta["uid"], None)
    elif event["type"] in ("ADDED", "MODIFIED"):
        view[meta["uid"]] = int(meta["resourceVersion"])


async def churn(store: ResourceStore, prefix: str, count: int) -> None:
    """Creates, updates and deletes, interleaved with the other writers'."""
    rng = random.Random(prefix)
    mine: list[str] = []
    for i in range(count):
        choice = rng.random()
        if mine and choice < 0.3:
            obj = await store.get(Device, rng.choice(mine))
            obj.spec.port = rng.randint(1, 65535)
            await store.update(obj)
        elif mine and choice < 0.45:
            await store.delete(Device, mine.pop(rng.randrange(len(mine))))
        else:
            created = await store.create(Device, f"{prefix}-{i}", WEB,
                                         labels={"team": rng.choice(["a", "b"])})
            mine.append(created.uid)


async def stored_state(storage: Storage) -> dict[str, int]:
    docs = await storage.list("devices")
    return {d["metadata"]["uid"]: int(d["metadata"]["resourceVersion"]) for d in docs}


@pytest.mark.parametrize("database_url", BACKENDS, indirect=True)
async def test_list_then_watch_under_concurrent_writers_in_two_processes(opener) -> None:
    """A view built from a list and a watch from its X-Resource-Version equals a fresh
    list afterwards, resourceVersion for resourceVersion; events in order, none twice."""
    a, b = opener(), opener()
    await churn(a.store, "early", 10)
    writers = [asyncio.create_task(churn(p.store, f"w{i}", 25))
               for i, p in enumerate((a, b, a, b))]
    await asyncio.sleep(0.05)  # paces the list into the churn (kept; any timing must hold)
    revision, items = await b.cache.list(Device)  # while the writers write
    view = {json.loads(i.wire("v1"))["metadata"]["uid"]: int(i.resource_version)
            for i in items}
    watcher = await b.cache.watch(Device, resource_version=revision)
    await asyncio.gather(*writers)
    final = await a.storage.latest("devices")
    got = await events(watcher, lambda got: got and rv(got[-1]) >= final)
    revisions = [rv(e) for e in got]
    assert revisions == sorted(set(revisions)) and revisions[0] > revision
    for event in got:
        apply(view, event)
    assert view == await stored_state(a.storage)
    # and the other process's cache lists exactly that too, at the latest revision
    revision_a, items_a = await a.cache.list(Device)
    assert revision_a == final
    assert {json.loads(i.wire("v1"))["metadata"]["uid"]: int(i.resource_version)
            for i in items_a} == view


@pytest.mark.parametrize("database_url", BACKENDS, indirect=True)
async def test_watch_from_now_starts_with_the_state_then_follows(opener) -> None:
    a, b = opener(), opener()
    first = await a.store.create(Device, "one", WEB)
    watcher = await b.cache.watch(Device)
    start = await events(watcher, lambda got: len(got) >= 1)
    assert [(e["type"], e["object"]["metadata"]["name"]) for e in start] == [("ADDED", "one")]
    await a.store.delete(Device, first.uid)
    second = await a.store.create(Device, "two", WEB)
    more = await events(watcher, lambda got: len(got) >= 2)
    assert [(e["type"], e["object"]["metadata"]["name"]) for e in more] == [
        ("DELETED", "one"), ("ADDED", "two")]
    assert rv(more[1]) == int(second.metadata.resource_version)


async def test_a_resumed_watch_sends_what_it_missed_once(opener) -> None:
    a, b = opener(), opener()
    obj = await a.store.create(Device, "d", WEB)
    revision, _ = await b.cache.list(Device)
    watcher = await b.cache.watch(Device, resource_version=revision)
    obj.spec.port = 1
    obj = await a.store.update(obj)
    seen = await events(watcher, lambda got: len(got) >= 1)
    watcher.close()  # the client disconnects
    assert await watcher.next(0) is None
    for port in (2, 3):
        obj.spec.port = port
        obj = await a.store.update(obj)
    resumed = await b.cache.watch(Device, resource_version=rv(seen[-1]))
    got = await events(resumed, lambda got: len(got) >= 2)
    assert [e["object"]["spec"]["port"] for e in got] == [2, 3]
    assert await events(resumed, timeout=0.3) == []


async def test_a_resume_older_than_memory_reads_the_log(opener) -> None:
    a = opener(ring_size=2)
    first = await a.store.create(Device, "d", WEB)
    for port in range(1, 6):
        first.spec.port = port
        first = await a.store.update(first)
    await a.cache.list(Device)
    await a.cache.feed(Device).sync()
    watcher = await a.cache.watch(Device, resource_version=0)
    got = await events(watcher, lambda got: len(got) >= 6)
    assert [e["type"] for e in got] == ["ADDED"] + ["MODIFIED"] * 5
    assert [e["object"]["spec"]["port"] for e in got[1:]] == [1, 2, 3, 4, 5]


@pytest.mark.parametrize("database_url", BACKENDS, indirect=True)
async def test_a_resource_version_older_than_the_log_is_an_error_410(opener) -> None:
    a = opener()
    obj = await a.store.create(Device, "d", WEB)
    for port in (1, 2, 3):
        obj.spec.port = port
        obj = await a.store.update(obj)
    await a.storage.compact("devices", 1)
    watcher = await a.cache.watch(Device, resource_version=1)
    got = await events(watcher)
    assert [e["type"] for e in got] == ["ERROR"]
    status = got[0]["object"]
    assert status["code"] == 410 and status["kind"] == "Status"
    assert status["reason"] == "Expired"
    assert await watcher.next(0) is None


async def test_label_filtered_watch_adds_and_deletes_as_labels_change(opener) -> None:
    a, b = opener(), opener()
    await b.cache.list(Device)  # b caches the kind: it knows the labels before each change
    await eventually(lambda: b.cache.feed(Device).cache is not None)
    watcher = await b.cache.watch(Device, selector=parse_selector("team=a"))
    obj = await a.store.create(Device, "x", WEB, labels={"team": "b"})
    obj.metadata.labels = {"team": "a"}
    obj = await a.store.update(obj)           # starts matching: ADDED
    obj.spec.port = 7
    obj = await a.store.update(obj)           # still matches: MODIFIED
    obj.metadata.labels = {"team": "c"}
    obj = await a.store.update(obj)           # stops matching: DELETED
    await a.store.delete(Device, obj.uid)      # not matching: nothing
    other = await a.store.create(Device, "y", WEB, labels={"team": "a"})
    await a.store.delete(Device, other.uid)
    got = await events(watcher, lambda got: len(got) >= 5)
    assert [(e["type"], e["object"]["metadata"]["name"]) for e in got] == [
        ("ADDED", "x"), ("MODIFIED", "x"), ("DELETED", "x"), ("ADDED", "y"), ("DELETED", "y")]
    assert got[2]["object"]["metadata"]["labels"] == {"team": "c"}


async def test_a_watcher_too_far_behind_ends_with_410_and_writers_never_wait(opener) -> None:
    a = opener(queue_size=3)
    slow = await a.cache.watch(Device, resource_version=0)
    for i in range(10):  # nobody reads `slow` meanwhile
        await a.store.create(Device, f"d{i}", WEB)
    await a.cache.feed(Device).sync()
    got = await events(slow)
    assert [e["type"] for e in got] == ["ERROR"] and got[0]["object"]["code"] == 410


@pytest.mark.parametrize("database_url", BACKENDS, indirect=True)
async def test_cached_reads_see_the_other_process_write_at_once(opener) -> None:
    a, b = opener(), opener()
    await b.cache.list(Device)
    await eventually(lambda: b.cache.feed(Device).cache is not None)  # b's cache is filled
    obj = await a.store.create(Device, "d", WEB, labels={"k": "v"})
    found = await b.cache.get(Device, "d")  # no waiting for a poll: a consistent read
    assert found.resource_version == obj.metadata.resource_version
    revision, items = await b.cache.list(Device, selector=parse_selector("k=v"))
    assert [i.name for i in items] == ["d"] and revision == int(found.resource_version)
    await a.store.delete(Device, obj.uid)
    with pytest.raises(NotFound):
        await b.cache.get(Device, obj.uid)


async def test_a_kind_beyond_the_bound_is_read_from_storage_and_still_watched(opener) -> None:
    a = opener(max_objects=2)
    for i in range(3):
        await a.store.create(Device, f"d{i}", WEB)
    revision, items = await a.cache.list(Device, limit=2, after="d0")
    await asyncio.sleep(0.1)  # kept: proves it is NOT filled meanwhile
    assert a.cache.feed(Device).cache is None  # three are more than two: not cached
    assert [i.name for i in items] == ["d1", "d2"]
    assert revision == await a.storage.latest("devices")
    watcher = await a.cache.watch(Device)
    got = await events(watcher, lambda got: len(got) >= 3)
    assert sorted(e["object"]["metadata"]["name"] for e in got) == ["d0", "d1", "d2"]
    await a.store.create(Device, "d3", WEB)
    more = await events(watcher, lambda got: len(got) >= 1)
    assert [(e["type"], e["object"]["metadata"]["name"]) for e in more] == [("ADDED", "d3")]


async def test_failed_writes_at_the_end_of_the_log_never_stall_reads(opener) -> None:
    """A write that fails after taking its revision leaves no change (a 409 for a taken
    name): a cache positioned before such revisions moves past them instead of asking the
    log about them again on every read (which waited seconds each time)."""
    a, b = opener(), opener()
    await a.store.create(Device, "d", WEB)
    await b.cache.list(Device)
    await eventually(lambda: b.cache.feed(Device).cache is not None)
    for _ in range(3):
        with pytest.raises(AlreadyExists):
            await a.store.create(Device, "d", WEB)
    feed = b.cache.feed(Device)
    await b.cache.list(Device)  # the first read may wait for the storage to see them
    latest = await b.storage.latest("devices")
    assert feed.revision == latest
    asked: list[int] = []
    changes = b.storage.changes

    async def counting(collection: str, after: int, limit: int = 1000) -> Any:
        asked.append(after)
        return await changes(collection, after, limit)

    b.storage.changes = counting  # type: ignore[method-assign]
    for _ in range(5):
        revision, items = await b.cache.list(Device)
        assert revision == latest and [i.name for i in items] == ["d"]
    assert asked == []  # current: no read of the log at all (it used to wait each time)


@pytest.mark.parametrize("database_url", ["file", "postgresql", "mariadb"], indirect=True)
async def test_reads_that_arrive_together_share_a_check_and_all_see_the_write(opener
                                                                             ) -> None:
    """Concurrent reads share one `latest()` check, one that started after they arrived:
    every read that starts after a write completed (in another process) sees it."""
    a, b = opener(), opener()
    await b.cache.list(Device)
    await eventually(lambda: b.cache.feed(Device).cache is not None)
    feed = b.cache.feed(Device)
    before = feed._checks_started
    for round in range(3):
        created = await a.store.create(Device, f"d{round}", WEB)
        found = await asyncio.gather(*(b.cache.get(Device, created.uid) for _ in range(20)))
        assert {f.resource_version for f in found} == {created.metadata.resource_version}
    assert feed._checks_started - before <= 3  # one check per burst, not one per read


async def test_an_uncached_kind_filters_creations_exactly(opener) -> None:
    """Without the cache the labels before a change are unknown, but a creation has none:
    one that does not match is not sent at all (it was once sent as DELETED)."""
    a = opener(max_objects=0)  # never cached
    watcher = await a.cache.watch(Device, selector=parse_selector("team=a"))
    await a.store.create(Device, "other", WEB, labels={"team": "b"})
    await a.store.create(Device, "mine", WEB, labels={"team": "a"})
    got = await events(watcher, lambda got: len(got) >= 1)
    assert [(e["type"], e["object"]["metadata"]["name"]) for e in got] == [("ADDED", "mine")]


def _change(revision: int, kind: str, name: str, uid: str) -> StoredChange:
    return StoredChange(revision, kind, {"metadata": {  # type: ignore[arg-type]
        "name": name, "uid": uid, "resourceVersion": str(revision), "labels": {"k": "v"}}})


def _consistent(objects: KindObjects) -> list[tuple[str, str]]:
    """Every entry reachable by its name, each name once: (name, uid) in list order."""
    assert objects.names == sorted(set(objects.names)) == sorted(objects.by_name)
    assert sorted(objects.by_name.values()) == sorted(objects.entries)
    return [(e.name, e.uid) for e in objects.page(parse_selector("k=v"), None, None)]


def test_kind_objects_stay_consistent_when_a_name_changes_hands_out_of_order() -> None:
    """A log in which a new uid takes a name before the old uid's delete (what the file
    backend wrote for a create racing a delete of one name, and what a delete that crashed
    after removing its document leaves): the newest holder of the name wins, and lists
    never fail. The cache used to keep the name twice, then raise KeyError on every list."""
    objects = KindObjects()
    objects.apply(_change(1, "ADDED", "n", "dev-0000000a"))
    objects.apply(_change(2, "ADDED", "n", "dev-0000000c"))  # a still holds n in this log
    assert _consistent(objects) == [("n", "dev-0000000c")]
    assert objects.find("dev-0000000a", True) is None
    objects.apply(_change(3, "DELETED", "n", "dev-0000000a"))
    assert _consistent(objects) == [("n", "dev-0000000c")]
    objects.apply(_change(4, "DELETED", "n", "dev-0000000c"))
    assert _consistent(objects) == [] and len(objects) == 0
    objects.apply(_change(5, "MODIFIED", "n", "dev-0000000d"))  # known only from now on
    objects.apply(_change(6, "ADDED", "m", "dev-0000000e"))
    assert _consistent(objects) == [("m", "dev-0000000e"), ("n", "dev-0000000d")]


def test_kind_objects_built_from_two_holders_of_one_name_keep_the_newer() -> None:
    old, new = (Entry(_change(r, "ADDED", "n", u).document)
                for r, u in ((7, "dev-0000000a"), (3, "dev-0000000b")))
    objects = KindObjects([old, new])
    assert _consistent(objects) == [("n", "dev-0000000a")]


@pytest.mark.parametrize("database_url", BACKENDS, indirect=True)
async def test_a_resource_version_ahead_of_the_log_is_waited_for_then_refused(opener
                                                                            ) -> None:
    """A watch from a resourceVersion the log has not reached (another process's newer
    view, or one from before a restore): it waits a bounded time for the log, then is
    refused as Kubernetes refuses it ("too large resource version"). It used to be
    accepted at once and drop every change up to that version: from head+1000 it saw
    nothing, ever."""
    a, b, c = opener(), opener(version_wait=0.3), opener(version_wait=30)
    await a.store.create(Device, "first", WEB)
    head = await a.storage.latest("devices")
    with pytest.raises(ResourceVersionTooLarge) as refused:
        await b.cache.watch(Device, resource_version=head + 1000)
    assert (refused.value.requested, refused.value.current) == (head + 1000, head)
    assert "too large resource version" in str(refused.value).lower()
    assert not b.cache.feed(Device).watchers
    # Ahead by 5 while another process writes: accepted once the log has it, from there.
    watching = asyncio.create_task(c.cache.watch(Device, resource_version=head + 5))
    created = [await a.store.create(Device, f"d{i}", WEB) for i in range(10)]
    watcher = await watching
    after = [o.metadata.name for o in created if int(o.metadata.resource_version) > head + 5]
    got = await events(watcher, lambda got: len(got) >= len(after))
    assert [e["object"]["metadata"]["name"] for e in got] == after


async def test_a_poller_woken_as_it_is_cancelled_stops(tmp_path):
    """A write's wake-up arriving in the same loop turn as the cancel that stops the
    server: the poller ends at once. (With `asyncio.wait_for` it swallowed the cancel and
    slept a whole poll interval more: a stop held up by `poll_interval`.)"""
    storage = FileStorage(tmp_path)
    store = ResourceStore(storage, [Device])
    cache = WatchCache(storage, [Device], encode=store.wire, render=store.render,
                       poll_interval=30)
    watcher = await cache.watch(Device)
    feed = cache.feed(Device)
    poller = feed._poller
    assert poller is not None
    for _ in range(3):  # into its wait for a wake-up
        await asyncio.sleep(0)
    feed.wake()
    poller.cancel()
    done, _ = await asyncio.wait({poller}, timeout=2)
    assert done, "the poller ran on after it was cancelled"
    watcher.close()
    await cache.close()
    await storage.close()
