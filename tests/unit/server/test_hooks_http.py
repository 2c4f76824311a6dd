"""Hooks and ``?dryRun=All`` over HTTP (SPEC section 10): Reject's status and §3 body, a
failing hook's 500 naming only the hook, and a dry run of each write kind storing and
publishing nothing."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest

from fabrica import Hooks, Reject, ServiceSettings, WriteContext
from fabrica.events import CloudEvent, MemoryBus
from fabrica.server import create_app
from fabrica.storage import FileStorage
from tests._support.app import Device, serve_in_process

WEB = {"name": "web-01", "type": "server", "ipAddress": "10.0.0.1"}
MERGE = {"content-type": "application/merge-patch+json"}


class CountingBus(MemoryBus):
    published = 0

    async def publish(self, event: CloudEvent) -> None:
        self.published += 1
        await super().publish(event)


class DeviceHooks(Hooks[Device]):
    async def admit(self, ctx: WriteContext, new: Device, old: Device | None) -> Device | None:
        if new.spec.ip_address == "10.6.6.6":
            raise Reject(422, "that address is banned", field="spec.ipAddress")
        if new.spec.ip_address == "10.9.9.9":
            raise KeyError("a bug with a /secret/path in it")
        if "owner" not in new.metadata.labels:  # defaulting
            labels = {**new.metadata.labels, "owner": ctx.actor.subject}
            return new.model_copy(update={"metadata": new.metadata.model_copy(
                update={"labels": labels})})
        return None

    async def admit_delete(self, ctx: WriteContext, old: Device) -> None:
        if old.metadata.labels.get("locked") == "true":
            raise Reject(409, "unlock it first")


@pytest.fixture
async def served(tmp_path: Path):  # type: ignore[no-untyped-def]
    bus = CountingBus()
    settings = ServiceSettings(project="device-api", package="device_api", events=True)
    app = create_app([Device], FileStorage(tmp_path / "data"), settings=settings, bus=bus,
                     hooks=[DeviceHooks])
    async with serve_in_process(app) as client:
        yield client, bus


@pytest.fixture
def client(served):  # type: ignore[no-untyped-def]
    return served[0]


async def test_a_hook_defaults_and_rejects_with_the_error_body(client: httpx.AsyncClient) -> None:
    created = await client.post("/devices", json=WEB)
    assert created.status_code == 201
    assert created.json()["metadata"]["labels"] == {"owner": "anonymous"}
    refused = await client.put("/devices/web-01", json={**WEB, "ipAddress": "10.6.6.6"})
    assert refused.status_code == 422
    assert refused.json() == {"error": "that address is banned", "code": 422, "details": [
        {"field": "spec.ipAddress", "message": "that address is banned"}]}
    assert (await client.get("/devices/web-01")).json()["spec"]["ipAddress"] == "10.0.0.1"


async def test_a_failing_hook_is_a_500_naming_only_the_hook(
        client: httpx.AsyncClient, caplog: pytest.LogCaptureFixture) -> None:
    failed = await client.post("/devices", json={**WEB, "ipAddress": "10.9.9.9"})
    assert failed.status_code == 500
    assert failed.json() == {"error": "hook DeviceHooks.admit failed", "code": 500}
    assert "/secret/path" in caplog.text and "/secret/path" not in failed.text
    assert (await client.get("/devices/web-01")).status_code == 404


async def test_admit_delete_refuses(client: httpx.AsyncClient) -> None:
    await client.post("/devices", json={**WEB, "labels": {"locked": "true"}})
    refused = await client.delete("/devices/web-01")
    assert refused.status_code == 409 and refused.json()["error"] == "unlock it first"
    assert (await client.get("/devices/web-01")).status_code == 200


async def test_dry_run_of_every_write_stores_and_publishes_nothing(served) -> None:  # type: ignore[no-untyped-def]
    client, bus = served
    dry = await client.post("/devices?dryRun=All", json=WEB)
    assert dry.status_code == 201 and "location" not in dry.headers and "etag" not in dry.headers
    assert dry.json()["metadata"]["labels"] == {"owner": "anonymous"}  # the hook ran
    assert (await client.get("/devices/web-01")).status_code == 404
    refused = await client.post("/devices?dryRun=All", json={**WEB, "ipAddress": "10.6.6.6"})
    assert refused.status_code == 422  # a dry run refuses what the write would
    stored = (await client.post("/devices", json=WEB)).json()
    published = bus.published
    assert published >= 1
    writes = [
        ("PUT", "/devices/web-01", {**WEB, "port": 8443}, {}),
        ("PATCH", "/devices/web-01", {"port": 8443}, MERGE),
        ("PATCH", "/devices/web-01", [{"op": "replace", "path": "/port", "value": 8443}],
         {"content-type": "application/json-patch+json"}),
        ("PATCH", "/devices/web-01", {"port": 8443},
         {"content-type": "application/shorthand-patch+json"}),
        ("PUT", "/devices/web-01/status", {"health": "ok"}, {}),
        ("PATCH", "/devices/web-01/status", {"health": "ok"}, MERGE),
    ]
    for method, path, body, headers in writes:
        answer = await client.request(method, f"{path}?dryRun=All", json=body, headers=headers)
        assert answer.status_code == 200, (method, path, answer.text)
        shown = answer.json()
        assert shown["spec"]["port"] == 8443 or shown["status"]["health"] == "ok"
    deleted = await client.delete("/devices/web-01?dryRun=All")
    assert deleted.status_code == 200
    assert (await client.get("/devices/web-01")).json() == stored
    assert bus.published == published


async def test_a_dry_run_value_other_than_all_is_a_400(client: httpx.AsyncClient) -> None:
    for query in ("dryRun=all", "dryRun=", "dryRun=All&dryRun=None"):
        answer = await client.post(f"/devices?{query}", json=WEB)
        assert answer.status_code == 400, query
        assert answer.json()["details"] == [{"field": "dryRun", "message": "must be All"}]
    assert (await client.get("/devices/web-01")).status_code == 404
