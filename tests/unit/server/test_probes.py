"""A ``--role controller`` process's probes (`probe_app`): /health, /ready and /metrics as
an API process answers them, without Starlette's routing, its lifespan running the service."""

from __future__ import annotations

import asyncio

import httpx

from fabrica.server.process._probes import probe_app
from fabrica.service import Service, ServiceOptions
from fabrica.storage import FileStorage
from tests.unit.reconcile.test_controller import Book, Shelf, ShelfReconciler
from tests.unit.service.test_service import SETTINGS


def controller(tmp_path) -> Service:
    return Service([Shelf, Book], FileStorage(tmp_path), ServiceOptions(
        settings=SETTINGS, role="controller", instance="ctl-1"), reconcilers=[ShelfReconciler])


async def test_probes_answer_as_an_api_process_does(tmp_path):
    service = controller(tmp_path)
    transport = httpx.ASGITransport(app=probe_app(service))
    async with service, httpx.AsyncClient(transport=transport, base_url="http://t") as client:
        health = await client.get("/health")
        assert health.status_code == 200 and health.json() == service.health()
        assert health.json()["instance"] == "ctl-1"
        ready = await client.get("/ready")
        assert ready.status_code == 200
        assert ready.headers["cache-control"] == "no-store"
        assert ready.json() == {"status": "ready", "checks": {
            "storage": "ok", "role": "ok", "events": "ok"}}
        metrics = await client.get("/metrics")
        assert metrics.headers["content-type"].startswith("text/plain")
        assert 'fabrica_process_info{instance="ctl-1",role="controller"' in metrics.text
        # /health and /ready: the service's own paths are one kind, ""
        assert ('fabrica_http_requests_total{code="200",kind="",verb="get"} 2.0'
                in metrics.text)
        for path in ("/shelves", "/openapi.json", "/docs", "/events"):
            missing = await client.get(path)
            assert (missing.status_code, missing.json()) == (404, {"error": "Not Found",
                                                                   "code": 404}), path
        refused = await client.post("/health")
        assert refused.status_code == 405 and refused.headers["allow"] == "GET, HEAD"


async def test_not_ready_while_the_service_has_not_started(tmp_path):
    service = controller(tmp_path)
    transport = httpx.ASGITransport(app=probe_app(service))
    async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
        ready = await client.get("/ready")
    assert ready.status_code == 503 and ready.json()["checks"]["role"] == "starting"
    await service.storage.close()


async def test_the_lifespan_starts_and_stops_the_service(tmp_path):
    service = controller(tmp_path)
    app = probe_app(service)
    inbox: asyncio.Queue[dict] = asyncio.Queue()
    outbox: list[dict] = []

    async def send(message):
        outbox.append(message)

    await inbox.put({"type": "lifespan.startup"})
    task = asyncio.create_task(app({"type": "lifespan"}, inbox.get, send))
    async with asyncio.timeout(5):
        while not outbox:
            await asyncio.sleep(0.01)
    assert outbox == [{"type": "lifespan.startup.complete"}]
    assert service.readiness.serving and service.controller is not None
    await inbox.put({"type": "lifespan.shutdown"})
    await asyncio.wait_for(task, 10)
    assert outbox[-1] == {"type": "lifespan.shutdown.complete"}
    assert service.readiness.stopping and service.bus.closed
