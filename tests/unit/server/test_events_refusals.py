"""``GET /events`` refuses before it answers 200: a type pattern no bus could subscribe is a
400 on every bus, and a bus that cannot subscribe now (NATS down) is a 503 with
Retry-After, not a 200 cut a few seconds later. The app is driven over ASGI by hand: a
stream that opens is read to its first chunk, then the client leaves."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from typing import Any
from urllib.parse import quote

import pytest

from fabrica import ServiceSettings
from fabrica.events import JetStream, MemoryBus, NatsBus
from fabrica.server import create_app
from fabrica.storage import FileStorage
from tests._support.app import Device, serve_in_process
from tests._support.nats import URL, NatsServer, drop_stream, names
from tests._support.wait import eventually


class Answer:
    def __init__(self) -> None:
        self.status = 0
        self.headers: dict[str, str] = {}
        self.body = b""


async def answer(app: Any, path: str, query: str = "") -> Answer:
    """The status, headers and body of a GET; of a stream, its first chunk only."""
    result = Answer()
    done = asyncio.Event()
    scope = {"type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1",
             "method": "GET", "scheme": "http", "path": path, "raw_path": path.encode(),
             "query_string": query.encode(), "root_path": "", "server": ("test", 80),
             "client": ("127.0.0.1", 1), "headers": []}
    requested = False

    async def receive() -> dict[str, Any]:
        nonlocal requested
        if not requested:
            requested = True
            return {"type": "http.request", "body": b"", "more_body": False}
        await done.wait()
        return {"type": "http.disconnect"}

    async def send(message: dict[str, Any]) -> None:
        if message["type"] == "http.response.start":
            result.status = message["status"]
            result.headers = {k.decode(): v.decode() for k, v in message["headers"]}
        elif message["type"] == "http.response.body":
            result.body += message.get("body", b"")
            if result.body or not message.get("more_body"):
                done.set()

    async with asyncio.timeout(20):
        await app(scope, receive, send)
    return result


@pytest.fixture(params=["memory", "nats"])
async def app(request, tmp_path) -> AsyncIterator[Any]:
    prefix, stream = names()
    settings = ServiceSettings(project="d", package="d", events=True, event_prefix=prefix)
    bus = MemoryBus() if request.param == "memory" else NatsBus(
        URL, jetstream=JetStream.for_prefix(stream, prefix, heartbeat=0.2))
    app = create_app([Device], FileStorage(tmp_path / "data"), settings=settings, bus=bus)
    try:
        async with serve_in_process(app):
            yield app
    finally:
        if request.param == "nats":
            await drop_stream(stream)


@pytest.mark.parametrize("pattern", [">", "io.fabrica.>", "a\x00b", "io.*.created.>"])
async def test_a_pattern_no_bus_can_subscribe_is_400_on_every_bus(app, pattern):
    got = await answer(app, "/events", f"type={quote(pattern)}")
    assert got.status == 400, got.body
    body = json.loads(got.body)
    assert body["code"] == 400 and body["error"].startswith("invalid type pattern")
    assert body["details"][0]["field"] == "type"


async def test_a_valid_pattern_opens_the_stream_on_every_bus(app):
    got = await answer(app, "/events", "type=io.fabrica.**")
    assert got.status == 200
    assert got.headers["content-type"].startswith("text/event-stream")
    assert got.body == b": connected\n\n"


async def test_events_while_nats_is_down_is_503_with_retry_after(tmp_path):
    server = NatsServer(tmp_path / "js")
    server.start()
    prefix, stream = names()
    bus = NatsBus(server.url, reconnect_time_wait=0.05,
                  jetstream=JetStream.for_prefix(stream, prefix, heartbeat=0.2))
    app = create_app([Device], FileStorage(tmp_path / "data"), bus=bus,
                     settings=ServiceSettings(project="d", package="d", event_prefix=prefix))
    try:
        async with serve_in_process(app):
            assert (await answer(app, "/events")).status == 200
            server.stop()
            await eventually(lambda: not bus.connected)
            got = await answer(app, "/events")
            assert got.status == 503, got.body
            assert got.headers["retry-after"] == "2"
            body = json.loads(got.body)
            assert body["code"] == 503
            assert f"cannot reach NATS at {server.url}" in body["error"]
            server.start()  # and once NATS is back, streams open again

            async def streaming() -> Any:
                got = await answer(app, "/events")
                return got if got.status == 200 else None
            got = await eventually(streaming, timeout=15)
            assert got.body == b": connected\n\n"
    finally:
        server.stop()


async def test_events_when_jetstream_cannot_subscribe_is_503(tmp_path):
    """Connected, but JetStream refuses the subscription (here: its stream was deleted
    under the server): a 503 at once, not a 200 cut a few seconds later."""
    prefix, stream = names()
    bus = NatsBus(URL, jetstream=JetStream.for_prefix(stream, prefix, heartbeat=0.2))
    app = create_app([Device], FileStorage(tmp_path / "data"), bus=bus,
                     settings=ServiceSettings(project="d", package="d", event_prefix=prefix))
    try:
        async with serve_in_process(app):
            assert (await answer(app, "/events")).status == 200
            await drop_stream(stream)
            got = await answer(app, "/events")
            assert got.status == 503, got.body
            assert got.headers["retry-after"] == "2"
            assert json.loads(got.body)["error"].startswith("event stream unavailable")
    finally:
        await drop_stream(stream)
