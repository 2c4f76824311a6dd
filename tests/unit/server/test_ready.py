"""``GET /ready`` and ``--role`` in-process; the NATS check against a NATS of the test's own."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from fabrica import ServiceSettings
from fabrica.events import JetStream, NatsBus
from fabrica.server import create_app
from fabrica.storage import FileStorage, SQLStorage
from tests._support.app import Device, serve_in_process
from tests._support.nats import NatsServer, names
from tests._support.wait import eventually
from tests.unit.reconcile.test_controller import Book, Shelf, ShelfReconciler

SETTINGS = ServiceSettings(project="shelves", package="shelves", events=True, reconcile=True)


def app_for(tmp_path, **kw):
    return create_app([Shelf, Book], FileStorage(tmp_path), settings=SETTINGS,
                      reconcilers=[ShelfReconciler], **kw)


async def test_ready_when_storage_bus_and_role_answer(tmp_path):
    async with serve_in_process(app_for(tmp_path, instance="node-a")) as client:
        response = await client.get("/ready")
        assert response.status_code == 200
        assert response.json() == {"status": "ready", "checks": {
            "storage": "ok", "role": "ok", "events": "ok"}}
        assert (await client.get("/health")).json()["instance"] == "node-a"
        metrics = (await client.get("/metrics")).text
        assert 'fabrica_process_info{instance="node-a",role="all",version=' in metrics


async def test_not_ready_while_stopping_and_when_storage_fails(tmp_path):
    app = app_for(tmp_path)
    async with serve_in_process(app) as client:
        async def broken(*args, **kwargs):
            raise OSError("disk gone")

        app.state.service.store.storage.list = broken
        response = await client.get("/ready")
        assert response.status_code == 503
        assert response.json()["status"] == "not ready"
        assert response.json()["checks"]["storage"] == "OSError: disk gone"
        assert (await client.get("/health")).status_code == 200  # liveness is not readiness
        del app.state.service.store.storage.list
        app.state.service.readiness.stopping = True
        assert (await client.get("/ready")).json()["checks"]["role"] == "stopping"


async def test_controller_role_serves_only_health_ready_and_metrics(tmp_path):
    app = app_for(tmp_path, role="controller")
    async with serve_in_process(app) as client:
        assert app.state.service.controller is not None
        for path in ("/health", "/ready", "/metrics"):
            assert (await client.get(path)).status_code == 200, path
        for path in ("/shelves", "/openapi.json", "/docs", "/events"):
            assert (await client.get(path)).status_code == 404, path
        assert 'role="controller"' in (await client.get("/metrics")).text


async def test_api_role_runs_no_reconciler(tmp_path):
    app = app_for(tmp_path, role="api")
    async with serve_in_process(app) as client:
        assert app.state.service.controller is None
        assert (await client.post("/shelves", json={"name": "s1", "books": 1})).status_code == 201
        await asyncio.sleep(0.2)  # kept: proves nothing happens (no reconcile) meanwhile
        assert (await client.get("/books")).json() == []  # nobody reconciled it here


def test_unknown_roles_are_refused(tmp_path):
    with pytest.raises(ValueError, match="role must be one of all, api, controller"):
        app_for(tmp_path, role="worker")


async def test_nats_outage_turns_ready_503_and_back(tmp_path):
    server = NatsServer(tmp_path / "js")
    server.start()
    prefix, stream = names()
    bus = NatsBus(server.url, reconnect_time_wait=0.05,
                  jetstream=JetStream.for_prefix(stream, prefix, heartbeat=0.2))
    app = create_app([Device], FileStorage(tmp_path / "data"), bus=bus,
                     settings=ServiceSettings(project="d", package="d", event_prefix=prefix))
    try:
        async with serve_in_process(app) as client:
            assert (await client.get("/ready")).status_code == 200
            server.stop()

            async def no_longer_ready() -> Any:
                response = await client.get("/ready")
                return response if response.status_code != 200 else None
            response = await eventually(no_longer_ready)
            assert response.status_code == 503
            assert response.json()["checks"]["events"] == f"not connected to NATS at {server.url}"
            server.start()

            async def ready() -> bool:
                return (await client.get("/ready")).status_code == 200
            await eventually(ready)
    finally:
        server.stop()


@pytest.mark.parametrize("role, ready", [("api", True), ("all", True), ("controller", False)])
async def test_a_nats_outage_leaves_sql_api_processes_ready_and_degraded(tmp_path, role, ready):
    """SPEC section 6: writes go on through the outbox while NATS is down, so a load
    balancer must not drop every API process; a controller cannot work without the bus."""
    server = NatsServer(tmp_path / "js")
    server.start()
    prefix, stream = names()
    storage = SQLStorage(f"sqlite:///{tmp_path}/db.sqlite")
    await storage.migrate()
    bus = NatsBus(server.url, reconnect_time_wait=0.05, publish_timeout=1.0,
                  jetstream=JetStream.for_prefix(stream, prefix, heartbeat=0.2))
    settings = ServiceSettings(project="shelves", package="shelves", events=True,
                               reconcile=True, event_prefix=prefix)
    app = create_app([Shelf, Book], storage, settings=settings, bus=bus, role=role,
                     reconcilers=[ShelfReconciler])
    try:
        async with serve_in_process(app) as client:
            assert (await client.get("/ready")).status_code == 200
            server.stop()
            await eventually(lambda: not bus.connected)
            response = await client.get("/ready")
            events = response.json()["checks"]["events"]
            if ready:
                assert response.status_code == 200, response.json()
                assert response.json()["status"] == "ready"
                assert events.startswith(f"degraded: not connected to NATS at {server.url}")
                written = await client.post("/shelves", json={"name": "s1", "books": 0})
                assert written.status_code == 201  # the write the readiness promises
            else:
                assert response.status_code == 503
                assert events == f"not connected to NATS at {server.url}"
            server.start()

            async def events_ok() -> Any:
                response = await client.get("/ready")
                return response if response.json()["checks"]["events"] == "ok" else None
            response = await eventually(events_ok)
            assert response.status_code == 200
    finally:
        server.stop()
