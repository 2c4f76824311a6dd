"""``GET /PLURAL?watch=true`` and ``X-Resource-Version`` over HTTP (SPEC section 8), on a
real uvicorn server in the test's event loop (streams are read as they come)."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import httpx
import pytest

from fabrica import ServiceSettings
from fabrica.server import create_app
from fabrica.storage import FileStorage
from tests._support.app import Device, serve_on_port
from tests._support.wait import eventually

WEB = {"type": "server", "ipAddress": "10.0.0.1"}


def make_app(tmp_path, **options: Any):  # type: ignore[no-untyped-def]
    settings = ServiceSettings(project="device-api", package="device_api")
    return create_app([Device], FileStorage(tmp_path / "data"), settings=settings,
                      watch_poll_interval=0.05, **options)


@pytest.fixture
async def server(tmp_path) -> AsyncIterator[tuple[Any, httpx.AsyncClient]]:
    app = make_app(tmp_path, watch_bookmark_interval=0.2)
    async with serve_on_port(app) as url, httpx.AsyncClient(base_url=url, timeout=10) as c:
        yield app, c


async def create(client: httpx.AsyncClient, name: str, **labels: str) -> dict[str, Any]:
    response = await client.post("/devices", json={"name": name, "labels": labels, **WEB})
    assert response.status_code == 201, response.text
    return response.json()


class Stream:
    """An open watch: its events as they come."""

    def __init__(self, response: httpx.Response) -> None:
        self.response = response
        self._lines = response.aiter_lines()

    async def take(self, count: int) -> list[dict[str, Any]]:
        got = []
        while len(got) < count:
            line = await asyncio.wait_for(anext(self._lines), 10)
            if line:
                got.append(json.loads(line))
        return got

    async def rest(self) -> list[dict[str, Any]]:
        """Every event until the server ends the stream."""
        return [json.loads(line) async for line in self._lines if line]


@asynccontextmanager
async def opened(client: httpx.AsyncClient, **params: str) -> AsyncIterator[Stream]:
    """``GET /devices?watch=true&...``, open."""
    async with client.stream("GET", "/devices", params={"watch": "true", **params}) as r:
        assert r.status_code == 200, await r.aread()
        assert r.headers["content-type"] == "application/x-ndjson"
        yield Stream(r)


async def test_list_then_watch_from_its_version_misses_nothing(server) -> None:
    _, client = server
    await create(client, "a")
    listed = await client.get("/devices")
    version = listed.headers["x-resource-version"]
    assert int(version) == int(listed.json()[0]["metadata"]["resourceVersion"])
    b = await create(client, "b")  # between the list and the watch
    async with opened(client, resourceVersion=version) as stream:
        patched = await client.patch("/devices/a", json={"port": 8443})
        await client.delete(f"/devices/{b['metadata']['uid']}")
        got = await stream.take(3)
    assert [(e["type"], e["object"]["metadata"]["name"]) for e in got] == [
        ("ADDED", "b"), ("MODIFIED", "a"), ("DELETED", "b")]
    assert got[1]["object"] == patched.json()
    versions = [int(e["object"]["metadata"]["resourceVersion"]) for e in got]
    assert versions == sorted(versions) and versions[0] > int(version)


async def test_watch_without_a_version_starts_with_every_match(server) -> None:
    _, client = server
    await create(client, "a", team="x")
    await create(client, "b", team="y")
    async with opened(client, labelSelector="team=x") as stream:
        first = await stream.take(1)
        await create(client, "c", team="x")
        await client.patch("/devices/b", json={"port": 1})  # does not match: not sent
        second = await stream.take(1)
    assert [(e["type"], e["object"]["metadata"]["name"]) for e in first + second] == [
        ("ADDED", "a"), ("ADDED", "c")]


async def test_bookmarks_carry_only_the_resource_version(server) -> None:
    _, client = server
    await create(client, "a")
    async with opened(client, allowWatchBookmarks="true", labelSelector="none") as stream:
        await create(client, "b")  # filtered out, but the bookmark moves past it
        latest = (await client.get("/devices")).headers["x-resource-version"]
        while (event := (await stream.take(1))[0])["object"]["metadata"][
                "resourceVersion"] != latest:
            assert event["type"] == "BOOKMARK"
    assert event == {"type": "BOOKMARK", "object": {
        "kind": "Device", "apiVersion": "v1", "metadata": {"resourceVersion": latest}}}


async def test_a_version_too_old_is_one_error_410_event(server, tmp_path) -> None:
    app, client = server
    await create(client, "a")
    for port in (1, 2, 3):
        await client.patch("/devices/a", json={"port": port})
    await app.state.service.store.storage.compact("devices", 1)
    async with opened(client, resourceVersion="1") as stream:
        got = await stream.rest()
    assert [e["type"] for e in got] == ["ERROR"]
    assert got[0]["object"]["code"] == 410 and got[0]["object"]["reason"] == "Expired"


async def test_timeout_seconds_ends_the_stream(server) -> None:
    _, client = server
    await create(client, "a")
    async with opened(client, timeoutSeconds="1") as stream:
        got = await stream.rest()
    assert [e["type"] for e in got] == ["ADDED"]


async def test_a_client_that_leaves_ends_its_watch(server) -> None:
    app, client = server
    feed = app.state.service.watch_cache.feed(Device)
    async with opened(client) as stream:
        await create(client, "a")
        await stream.take(1)
        assert len(feed.watchers) == 1
    await eventually(lambda: not feed.watchers)  # the server notices the closed connection


async def test_shutdown_ends_open_watches(tmp_path) -> None:
    """uvicorn waits for open responses before it stops: an endless watch would hold a
    SIGTERM'd server forever unless the server ends it."""
    app = make_app(tmp_path)
    async with httpx.AsyncClient(timeout=10) as client:
        serving = serve_on_port(app)
        url = await serving.__aenter__()
        async with client.stream("GET", f"{url}/devices", params={"watch": "true"}) as r:
            ended = asyncio.create_task(Stream(r).rest())
            await eventually(lambda: app.state.service.watch_cache.watchers == 1)
            # stop the server as SIGTERM does, the watch still open
            await asyncio.wait_for(serving.__aexit__(None, None, None), 10)
            assert await asyncio.wait_for(ended, 10) == []  # ended cleanly, not cut


@pytest.mark.parametrize(("param", "value"), [
    ("watch", "yes"), ("resourceVersion", "abc"), ("resourceVersion", "-1"),
    ("timeoutSeconds", "-1"), ("timeoutSeconds", "1.5"), ("allowWatchBookmarks", "1")])
async def test_malformed_watch_parameters_are_400_on_lists_and_watches(
        server, param: str, value: str) -> None:
    _, client = server
    for watch in ("false", "true"):
        response = await client.get("/devices", params={"watch": watch, param: value})
        assert response.status_code == 400, response.text
        assert response.json()["details"][0]["field"] == param


def test_openapi_documents_the_watch(tmp_path) -> None:
    from fabrica.server.openapi._openapi import build_openapi

    doc = build_openapi([Device], title="t")
    op = doc["paths"]["/devices"]["get"]
    names = {p["name"] for p in op["parameters"]}
    assert {"watch", "resourceVersion", "allowWatchBookmarks", "timeoutSeconds"} <= names
    ok = op["responses"]["200"]
    assert "X-Resource-Version" in ok["headers"]
    assert set(ok["content"]) == {"application/json", "application/x-ndjson"}


async def test_a_version_ahead_of_the_log_is_error_504_never_a_watch_that_skips(tmp_path
                                                                              ) -> None:
    """Kubernetes' "too large resource version": after a bounded wait for the log, one
    ERROR event (Status 504 Timeout, retry after 1 s), so the client lists again. It used to
    open a stream that silently dropped every change up to that version."""
    app = make_app(tmp_path, watch_version_wait=0.3)
    async with serve_on_port(app) as url, httpx.AsyncClient(base_url=url, timeout=10) as c:
        await create(c, "a")
        head = int((await c.get("/devices")).headers["x-resource-version"])
        for ahead in (5, 1000):
            answer = await c.get("/devices", params={
                "watch": "true", "timeoutSeconds": "1", "resourceVersion": str(head + ahead)})
            assert answer.status_code == 200, answer.text
            [line] = answer.text.splitlines()
            event = json.loads(line)
            assert event["type"] == "ERROR"
            status = event["object"]
            assert (status["kind"], status["code"], status["reason"]) == (
                "Status", 504, "Timeout")
            assert status["message"] == (f"too large resource version: {head + ahead}, "
                                         f"current: {head}")
            assert status["details"] == {"retryAfterSeconds": 1}


async def test_a_watch_a_little_ahead_opens_once_the_log_gets_there(server) -> None:
    _, client = server
    head = int((await client.get("/devices")).headers["x-resource-version"])

    async def watch_from_ahead() -> list[dict[str, Any]]:
        async with opened(client, resourceVersion=str(head + 5)) as stream:
            return await stream.take(5)

    watching = asyncio.create_task(watch_from_ahead())
    created = [await create(client, f"d{i}") for i in range(10)]
    got = await watching
    assert [e["object"] for e in got] == [
        o for o in created if int(o["metadata"]["resourceVersion"]) > head + 5]
