"""`Informer` and `AsyncInformer` against a real HTTP server that cuts, ends and expires
watches when the test says so: the cache and the handlers stay exactly right."""

from __future__ import annotations

import asyncio
import queue
import threading
from collections.abc import Iterator
from typing import Any

import pytest

from fabrica.client import AsyncClient, AsyncInformer, Client, Informer
from fabrica.client._cache import Backoff, Cache
from tests._support.app import Device
from tests._support.watch_server import WatchServer


@pytest.fixture
def server() -> Iterator[WatchServer]:
    with WatchServer() as scripted:
        yield scripted


class Seen:
    """Records handler calls as (event, name, port) and lets the test await them."""

    def __init__(self, informer: Informer[Device] | AsyncInformer[Device]) -> None:
        self.calls: queue.Queue[tuple[str, str, int]] = queue.Queue()
        informer.on_add(lambda d: self._put("add", d))
        informer.on_update(lambda old, new: self._put("update", new, old))
        informer.on_delete(lambda d: self._put("delete", d))

    def _put(self, what: str, obj: Device, old: Device | None = None) -> None:
        assert old is None or old.metadata.uid == obj.metadata.uid
        self.calls.put((what, obj.metadata.name, obj.spec.port))

    def next(self, count: int) -> list[tuple[str, str, int]]:
        return [self.calls.get(timeout=10) for _ in range(count)]

    def nothing_more(self) -> bool:
        return self.calls.empty()


def names(objects: list[Device]) -> list[str]:
    return [o.metadata.name for o in objects]


def test_informer_caches_and_calls_handlers(server: WatchServer) -> None:
    server.create("web-01", {"env": "prod"})
    server.create("db-01", {"env": "dev"})
    with Client(server.url, [Device]) as client:
        informer = Informer(client, Device)
        seen = Seen(informer)
        assert not informer.has_synced
        with informer:
            assert informer.wait_for_sync(10) and informer.has_synced
            assert sorted(seen.next(2)) == [("add", "db-01", 443), ("add", "web-01", 443)]
            server.wait_watching()
            server.update("web-01", 8443)
            server.create("web-02", {"env": "prod"})
            server.delete("db-01")
            assert seen.next(3) == [("update", "web-01", 8443), ("add", "web-02", 443),
                                    ("delete", "db-01", 443)]
            assert names(informer.list()) == ["web-01", "web-02"]
            assert names(informer.list("env=prod")) == ["web-01", "web-02"]
            assert informer.list("env=dev") == [] and len(informer) == 2
            web = informer.get("web-01")
            assert web is not None and web.spec.port == 8443
            assert informer.get(web.metadata.uid) == web and informer.get("db-01") is None
            assert informer.resource_version == "105"
            thread = informer._thread
        assert thread is not None and not thread.is_alive()  # stop hung up the quiet watch


def test_informer_resumes_after_a_cut_without_missing_or_repeating(server: WatchServer) -> None:
    server.create("a")
    with Client(server.url, [Device]) as client:
        informer = Informer(client, Device, backoff=0.01)
        seen = Seen(informer)
        with informer:
            assert seen.next(1) == [("add", "a", 443)]
            server.wait_watching()
            server.update("a", 1)
            assert seen.next(1) == [("update", "a", 1)]
            server.pause()
            server.cut()
            server.wait_watches(2)
            server.create("b")  # while disconnected
            server.update("a", 2)
            server.resume()
            assert seen.next(2) == [("add", "b", 443), ("update", "a", 2)]
            server.wait_watching()
            server.bookmark()  # moves the resume point on; nothing to handle
            server.end()  # a clean end (a server's timeoutSeconds): resume from the bookmark
            server.wait_watches(3)
            server.wait_watching()
            server.delete("b")
            assert seen.next(1) == [("delete", "b", 443)]
            assert seen.nothing_more() and names(informer.list()) == ["a"]
    assert [r.get("resourceVersion") for r in server.requests] == ["101", "102", "104"]
    assert server.lists == 1


def test_informer_relists_on_410_and_reports_the_difference(server: WatchServer) -> None:
    server.create("stays"), server.create("changes"), server.create("goes")
    with Client(server.url, [Device]) as client:
        informer = Informer(client, Device, backoff=0.01)
        seen = Seen(informer)
        with informer:
            assert len(seen.next(3)) == 3
            server.wait_watching()
            server.pause()
            server.cut()
            server.wait_watches(2)
            server.update("changes", 7)
            server.delete("goes")
            server.create("new")
            server.forget_history()
            server.resume()
            assert sorted(seen.next(3)) == [("add", "new", 443), ("delete", "goes", 443),
                                            ("update", "changes", 7)]
            server.wait_watches(3)
            server.wait_watching()
            assert names(informer.list()) == ["changes", "new", "stays"]
            assert seen.nothing_more()
    assert server.lists == 2 and server.requests[-1]["resourceVersion"] == "106"


@pytest.mark.parametrize("asynchronous", [False, True])
def test_informer_relists_when_its_version_is_newer_than_the_servers(
        server: WatchServer, asynchronous: bool) -> None:
    """A server restored from an older backup answers a resume from a version it never
    reached with 504 ("too large resource version"): the informer lists again and reports
    the difference. It used to retry that watch for ever, its cache stale."""
    server.create("kept"), server.create("lost")
    restored_at = server.version
    server.create("newer")
    seen: queue.Queue[tuple[str, str]] = queue.Queue()

    def run_sync() -> None:
        with Client(server.url, [Device]) as client:
            informer = Informer(client, Device, backoff=0.01)
            informer.on_add(lambda d: seen.put(("add", d.metadata.name)))
            informer.on_delete(lambda d: seen.put(("delete", d.metadata.name)))
            with informer:
                scenario(lambda: names(informer.list()))

    async def run_async() -> None:
        async with AsyncClient(server.url, [Device]) as client:
            informer = AsyncInformer(client, Device, backoff=0.01)
            informer.on_add(lambda d: seen.put(("add", d.metadata.name)))
            informer.on_delete(lambda d: seen.put(("delete", d.metadata.name)))
            async with informer:
                await asyncio.to_thread(scenario, lambda: names(informer.list()))

    def scenario(listed: Any) -> None:
        assert sorted(seen.get(timeout=10) for _ in range(3)) == [
            ("add", "kept"), ("add", "lost"), ("add", "newer")]
        server.wait_watching()
        server.pause()
        server.cut()
        server.wait_watches(2)
        server.restore(restored_at - 1, keep=["kept"])
        server.create("after")  # the restored server's own next version
        server.resume()
        assert sorted(seen.get(timeout=10) for _ in range(3)) == [
            ("add", "after"), ("delete", "lost"), ("delete", "newer")]
        assert listed() == ["after", "kept"]

    if asynchronous:
        asyncio.run(run_async())
    else:
        run_sync()
    assert server.lists == 2


def test_informer_backs_off_and_survives_failing_handlers(server: WatchServer) -> None:
    server.refuse = 3
    with Client(server.url, [Device]) as client:
        informer = Informer(client, Device, "env=prod", backoff=0.01)
        informer.on_add(lambda d: 1 / 0)  # logged; the other handlers still run
        seen = Seen(informer)
        with informer:
            server.wait_watches(4)
            server.wait_watching()
            server.create("dev", {"env": "dev"})
            server.create("prod", {"env": "prod"})
            assert seen.next(1) == [("add", "prod", 443)]
    assert all(r["labelSelector"] == "env=prod" for r in server.requests)


def test_backoff_grows_with_jitter_up_to_its_cap() -> None:
    backoff = Backoff(0.1, 1.0)
    delays = [backoff.next() for _ in range(8)]
    caps = [0.1, 0.2, 0.4, 0.8, 1.0, 1.0, 1.0, 1.0]
    assert all(cap / 2 <= d <= cap for d, cap in zip(delays, caps, strict=True))
    assert len({round(d, 9) for d in delays[4:]}) > 1  # jittered: not all the same
    backoff.reset()
    assert backoff.next() <= 0.1


def test_informer_stops_while_the_server_is_away() -> None:
    with WatchServer() as gone:
        url = gone.url
    with Client(url, [Device], retries=0) as client:
        informer = Informer(client, Device, backoff=0.05).start()
        assert not informer.wait_for_sync(0.2)
        informer.stop()
        assert informer._thread is not None and not informer._thread.is_alive()


def test_async_informer(server: WatchServer) -> None:
    server.create("a", {"env": "prod"})
    events: list[tuple[str, str]] = []
    changed = threading.Event()

    async def on_update(old: Device, new: Device) -> None:
        await asyncio.sleep(0)
        events.append(("update", new.metadata.name))
        changed.set()

    async def main() -> None:
        async with AsyncClient(server.url, [Device]) as client:
            informer = AsyncInformer(client, Device, on_update=on_update, backoff=0.01,
                                     on_add=lambda d: events.append(("add", d.metadata.name)))
            async with informer:
                assert await informer.wait_for_sync(10) and informer.has_synced
                await asyncio.to_thread(server.wait_watching)
                server.cut()
                await asyncio.to_thread(server.wait_watches, 2)
                await asyncio.to_thread(server.wait_watching)
                server.update("a", 5)
                await asyncio.to_thread(changed.wait, 10)
                got = informer.get("a")
                assert got is not None and got.spec.port == 5
                assert names(informer.list("env=prod")) == ["a"]
                assert informer.resource_version == "102"
            assert informer._task is not None and informer._task.done()
            assert not await AsyncInformer(client, Device).wait_for_sync(0.01)

    asyncio.run(main())
    assert events == [("add", "a"), ("update", "a")]
    assert [r.get("resourceVersion") for r in server.requests] == ["101", "101"]


def test_cache_ignores_replays_and_reports_a_relist_as_differences() -> None:
    cache: Cache[dict[str, Any]] = Cache(lambda raw: raw)

    def obj(uid: str, version: int, **labels: str) -> dict[str, Any]:
        return {"metadata": {"uid": uid, "name": f"n-{uid}", "resourceVersion": str(version),
                             "labels": labels}}

    assert [c.type for c in cache.replace([obj("a", 5), obj("b", 6)], "6")] == ["ADDED"] * 2
    # a watch resumed from an older version (a paged list's first page) replays: no change
    assert cache.apply({"type": "MODIFIED", "object": obj("a", 5)}) is None
    assert cache.apply({"type": "ADDED", "object": obj("b", 6)}) is None
    assert cache.apply({"type": "DELETED", "object": obj("zz", 7)}) is None
    change = cache.apply({"type": "ADDED", "object": obj("a", 8, env="x")})  # K8s: seen, so
    assert change is not None and change.type == "MODIFIED"  # an update for the handlers
    assert cache.apply({"type": "BOOKMARK", "object": {"metadata": {"resourceVersion": "12"}}}) \
        is None and cache.resource_version == "12"
    assert [o["metadata"]["uid"] for o in cache.list("env=x")] == ["a"]
    assert cache.apply({"type": "DELETED", "object": obj("a", 7)}) is None  # older: stale
    cache.replace([obj("a", 8, env="x"), obj("b", 6), obj("d", 3)], "12")
    gone = cache.apply({"type": "DELETED", "object": obj("d", 3)})  # at its last version
    assert gone is not None and gone.type == "DELETED" and cache.get("d") is None
    assert cache.get("n-b") == obj("b", 6)
    diff = cache.replace([obj("a", 8, env="x"), obj("b", 9), obj("c", 10)], "10")
    assert [(c.type, c.object["metadata"]["uid"]) for c in diff] == [("MODIFIED", "b"),
                                                                    ("ADDED", "c")]
    diff = cache.replace([obj("c", 10)], "11")
    assert sorted((c.type, c.object["metadata"]["uid"]) for c in diff) == [
        ("DELETED", "a"), ("DELETED", "b")]
    assert cache.resource_version == "11" and len(cache) == 1
