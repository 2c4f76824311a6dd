"""``GET /events`` passes the client's ``Last-Event-ID`` on and counts in ``/metrics`` what
its clients were told they missed. The SSE response never ends, so the app is driven over
ASGI by hand: the first chunks are read, then the client disconnects."""

from __future__ import annotations

import asyncio
from typing import Any

from fabrica import ServiceSettings
from fabrica.events import MemoryBus
from fabrica.server import create_app
from fabrica.storage import FileStorage
from tests._support.app import Device, DeviceSpec, serve_in_process
from tests._support.wait import eventually


async def first_chunks(app: Any, path: str, headers: dict[str, str], count: int) -> list[bytes]:
    """The first `count` body chunks of a streaming GET, then a disconnect."""
    chunks: list[bytes] = []
    done = asyncio.Event()
    scope = {"type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1",
             "method": "GET", "scheme": "http", "path": path, "raw_path": path.encode(),
             "query_string": b"", "root_path": "", "server": ("test", 80),
             "client": ("127.0.0.1", 1),
             "headers": [(k.lower().encode(), v.encode()) for k, v in headers.items()]}
    requested = False

    async def receive() -> dict[str, Any]:
        nonlocal requested
        if not requested:
            requested = True
            return {"type": "http.request", "body": b"", "more_body": False}
        await done.wait()
        return {"type": "http.disconnect"}

    async def send(message: dict[str, Any]) -> None:
        if message["type"] == "http.response.body" and message.get("body"):
            chunks.append(message["body"])
            if len(chunks) >= count:
                done.set()

    async with asyncio.timeout(10):
        await app(scope, receive, send)
    return chunks


async def test_last_event_id_resumes_and_an_unknown_one_is_counted(tmp_path):
    settings = ServiceSettings(project="devices", package="devices", events=True)
    bus = MemoryBus()
    app = create_app([Device], FileStorage(tmp_path / "data"), settings=settings, bus=bus)
    received: list[Any] = []
    await bus.subscribe("**", lambda e: _append(received, e))
    async with serve_in_process(app) as client:
        for name in ("a", "b"):
            response = await client.post("/devices", json={
                "metadata": {"name": name},
                "spec": DeviceSpec(type="server", ip_address="10.0.0.1").model_dump()})
            assert response.status_code == 201
        await eventually(lambda: len(received) >= 2)
        resumed = await first_chunks(app, "/events", {"Last-Event-ID": received[0].id}, 2)
        assert resumed[1].startswith(f"id: {received[1].id}\n".encode())
        unknown = await first_chunks(app, "/events", {"Last-Event-ID": "nope"}, 2)
        assert unknown[1].startswith(b"event: fabrica.resync\n")
        metrics = (await client.get("/metrics")).text
    assert "fabrica_events_resyncs_total 1.0" in metrics
    assert 'fabrica_events_dropped_total{reason="slow_subscriber"} 0.0' in metrics


async def _append(into: list[Any], event: Any) -> None:
    into.append(event)


async def test_metrics_count_what_the_bus_dropped_holds_back_or_could_not_publish(tmp_path):
    settings = ServiceSettings(project="devices", package="devices", events=True)
    bus = MemoryBus(queue_size=1, publish_timeout=0.01)
    app = create_app([Device], FileStorage(tmp_path / "data"), settings=settings, bus=bus)
    release = asyncio.Event()
    started = asyncio.Event()

    async def stuck(event: Any) -> None:
        started.set()
        await release.wait()

    await bus.subscribe("**", stuck, name="stuck")
    spec = DeviceSpec(type="server", ip_address="10.0.0.1").model_dump()
    async with serve_in_process(app) as client:
        for n in range(3):  # one in the handler, one queued, one dropped after 10 ms
            response = await client.post("/devices", json={"metadata": {"name": f"d{n}"},
                                                           "spec": spec})
            assert response.status_code == 201
            await started.wait()
        metrics = (await client.get("/metrics")).text
        assert 'fabrica_events_handler_dropped_total{subscriber="stuck"} 1.0' in metrics
        assert 'fabrica_events_handler_pending{subscriber="stuck"} 1.0' in metrics
        assert "fabrica_events_publish_failures_total 0.0" in metrics
        release.set()
        await bus.close(drain=False)  # the bus is gone: a write's events cannot go out
        response = await client.post("/devices", json={"metadata": {"name": "late"},
                                                       "spec": spec})
        assert response.status_code == 201
        metrics = (await client.get("/metrics")).text
        assert "fabrica_events_publish_failures_total 1.0" in metrics


async def test_last_event_id_resumes_from_jetstream(tmp_path):
    """On NATS JetStream the stream, not this process, holds what the client missed."""
    from fabrica.events import JetStream, NatsBus
    from tests._support.nats import URL, drop_stream, names

    prefix, stream = names()
    settings = ServiceSettings(project="devices", package="devices", events=True,
                               event_prefix=prefix)
    bus = NatsBus(URL, jetstream=JetStream.for_prefix(stream, prefix, heartbeat=0.2))
    app = create_app([Device], FileStorage(tmp_path / "data"), settings=settings, bus=bus)
    received: list[Any] = []
    spec = DeviceSpec(type="server", ip_address="10.0.0.1").model_dump()
    try:
        async with serve_in_process(app) as client:
            await bus.subscribe(f"{prefix}.**", lambda e: _append(received, e))
            for name in ("a", "b", "c"):
                response = await client.post("/devices", json={"metadata": {"name": name},
                                                               "spec": spec})
                assert response.status_code == 201
            await eventually(lambda: len(received) >= 3)
            for last, following in zip(received, received[1:], strict=False):
                chunks = await first_chunks(app, "/events", {"Last-Event-ID": last.id}, 2)
                assert chunks[1].startswith(f"id: {following.id}\n".encode())
    finally:
        await drop_stream(stream)
