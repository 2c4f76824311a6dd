"""The transactional outbox on real PostgreSQL and NATS JetStream: every committed write's
events reach the stream, in commit order per resource, across NATS outages, with one relay
at a time among several processes."""

from __future__ import annotations

import asyncio
from collections import defaultdict
from typing import Any

import nats
import nats.js.api
import pytest

from fabrica import ServiceSettings
from fabrica.events import CloudEvent, JetStream, NatsBus
from fabrica.server import create_app
from fabrica.storage import SQLStorage
from tests._support.app import Device, serve_in_process
from tests._support.nats import URL, NatsServer, drop_stream, names
from tests._support.sqldb import postgres_schema
from tests._support.wait import eventually


@pytest.fixture
def pg_url():
    with postgres_schema() as url:
        yield url


@pytest.fixture
async def place():
    prefix, stream = names()
    yield prefix, stream
    await drop_stream(stream)


async def make_app(url: str, place: tuple[str, str], nats_url: str = URL):
    prefix, stream = place
    storage = SQLStorage(url)
    await storage.migrate()
    bus = NatsBus(nats_url, reconnect_time_wait=0.05, publish_timeout=1.0,
                  jetstream=JetStream.for_prefix(stream, prefix, heartbeat=0.2))
    settings = ServiceSettings(project="dev", package="dev", events=True, event_prefix=prefix)
    return create_app([Device], storage, bus=bus, settings=settings)


async def stored_events(nats_url: str, prefix: str, at_least: int, timeout: float = 15
                        ) -> list[CloudEvent]:
    """Every event in the stream, as an external consumer reads it from the start."""
    nc = await nats.connect(nats_url)
    try:
        sub = await nc.jetstream().subscribe(
            f"{prefix}.>", ordered_consumer=True,
            deliver_policy=nats.js.api.DeliverPolicy.ALL)
        events: list[CloudEvent] = []
        async with asyncio.timeout(timeout):
            while len(events) < at_least:
                events.append(CloudEvent.from_json((await sub.next_msg(timeout=timeout)).data))
        try:
            while True:
                events.append(CloudEvent.from_json((await sub.next_msg(timeout=0.5)).data))
        except nats.errors.TimeoutError:
            return events
    finally:
        await nc.close()


def device(n: int) -> dict[str, Any]:
    return {"name": f"d{n}", "type": "server", "ipAddress": f"10.0.0.{n % 250}"}


def assert_in_commit_order(events: list[CloudEvent], writes: dict[str, list[str]]) -> None:
    """Per resource, the lifecycle events carry the resourceVersions it was written at, in
    order, each once."""
    seen: defaultdict[str, list[str]] = defaultdict(list)
    for event in events:
        data: Any = event.data
        if event.action in ("created", "updated", "patched", "deleted"):
            seen[data["resourceUID"]].append(data["resource"]["metadata"]["resourceVersion"])
    assert dict(seen) == writes


async def test_every_write_s_events_reach_the_stream_in_commit_order(pg_url, place):
    prefix, _ = place
    app = await make_app(pg_url, place)
    writes: defaultdict[str, list[str]] = defaultdict(list)
    async with serve_in_process(app) as client:
        async def write(n: int) -> None:
            created = (await client.post("/devices", json=device(n))).json()
            uid = created["metadata"]["uid"]
            writes[uid].append(created["metadata"]["resourceVersion"])
            for port in (1001, 1002):
                patched = await client.patch(f"/devices/{uid}", json={"port": port})
                writes[uid].append(patched.json()["metadata"]["resourceVersion"])

        await asyncio.gather(*(write(n) for n in range(40)))
        await app.state.service.relay.drained()
    events = await stored_events(URL, prefix, 120)
    assert len(events) == 120
    assert len({e.id for e in events}) == 120
    assert_in_commit_order(events, dict(writes))


async def test_writes_go_on_while_nats_is_down_and_the_backlog_drains(tmp_path, pg_url, place):
    prefix, _ = place
    server = NatsServer(tmp_path / "js")
    server.start()
    try:
        app = await make_app(pg_url, place, server.url)
        async with serve_in_process(app) as client:
            assert (await client.post("/devices", json=device(0))).status_code == 201
            await app.state.service.relay.drained()
            server.stop()
            for n in range(1, 31):  # NATS is down: every write still succeeds
                assert (await client.post("/devices", json=device(n))).status_code == 201
            ready = await client.get("/ready")  # writes go on: ready, degraded (SPEC 6)
            assert ready.status_code == 200
            assert ready.json()["checks"]["events"].startswith("degraded: not connected")

            async def backlog_reported() -> bool:
                metrics = (await client.get("/metrics")).text
                assert "fabrica_outbox_backlog 30.0" in metrics
                assert app.state.service.relay.failures > 0
                return True
            await eventually(backlog_reported)
            server.start()
            await app.state.service.relay.drained()
            assert (await client.get("/ready")).status_code == 200
        events = await stored_events(server.url, prefix, 31)
        assert sorted(e.data["resourceName"] for e in events) == sorted(  # type: ignore[index]
            f"d{n}" for n in range(31))
    finally:
        server.stop()


async def test_several_processes_relay_one_at_a_time_without_duplicates(pg_url, place):
    prefix, _ = place
    apps = [await make_app(pg_url, place) for _ in range(3)]
    async with serve_in_process(apps[0]) as first, serve_in_process(apps[1]) as second, \
            serve_in_process(apps[2]) as third:
        clients = [first, second, third]
        await asyncio.gather(*(clients[n % 3].post("/devices", json=device(n))
                               for n in range(90)))
        for app in apps:
            await app.state.service.relay.drained()
        holders = [app for app in apps if "outbox:relay" in app.state.service.leases.held]
        assert len(holders) == 1
        assert sum(app.state.service.relay.relayed for app in apps) == 90
        await holders[0].state.service.leases.close()  # as if that process died: another takes over
        await third.post("/devices", json=device(999))
        for app in apps:  # waits for another relay to take the lease over and send it
            await app.state.service.relay.drained()
    events = await stored_events(URL, prefix, 91)
    assert len(events) == 91 and len({e.id for e in events}) == 91


async def test_a_reconciler_s_own_events_take_the_outbox_too(pg_url, place):
    from fabrica.store import Emission

    prefix, _ = place
    app = await make_app(pg_url, place)
    async with serve_in_process(app) as client:
        created = (await client.post("/devices", json=device(1))).json()
        store = app.state.service.store
        obj = await store.get(Device, created["metadata"]["uid"])
        await store.emit(Emission(obj, "provisioned", {"nodes": 3}, "emitted-1"))
        assert (await store.storage.outbox_stats()).backlog >= 1 or app.state.service.relay.relayed
        await app.state.service.relay.drained()
    events = await stored_events(URL, prefix, 2)
    emitted = [e for e in events if e.type == f"{prefix}.device.provisioned"]
    assert [e.id for e in emitted] == ["emitted-1"]
