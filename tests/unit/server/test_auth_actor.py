"""Every CloudEvent names its writer in the ``actor`` extension: the token's ``sub``,
``system:controller`` for reconcilers and the garbage collector, ``anonymous`` without auth."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from pydantic import Field

from fabrica import Condition, Model, Resource, ServiceSettings
from fabrica.auth import DEFAULT_MODEL, DEFAULT_POLICY, Auth, Policy, TokenVerifier
from fabrica.events import CloudEvent, MemoryBus
from fabrica.reconcile import ResourceReconciler
from fabrica.server import create_app
from fabrica.storage import FileStorage
from tests._support.app import Device, serve_in_process
from tests._support.tokens import SECRET, hs_token


class LampSpec(Model):
    watts: int = Field(10, ge=1)


class LampStatus(Model):
    lit: bool = False
    conditions: list[Condition] = []


class Lamp(Resource[LampSpec, LampStatus], prefix="lamp"):
    pass


class LampReconciler(ResourceReconciler[Lamp]):
    kind = Lamp

    async def reconcile_lamp(self, lamp: Lamp) -> None:
        if not lamp.status.lit:
            self.emit(lamp, "lit")
        lamp.status.lit = True


def auth(tmp_path: Path) -> Auth:
    (tmp_path / "model.conf").write_text(DEFAULT_MODEL)
    (tmp_path / "policy.csv").write_text(DEFAULT_POLICY)
    return Auth(TokenVerifier(secret=SECRET), Policy(tmp_path))


def as_user(sub: str, role: str = "admin") -> dict[str, str]:
    return {"Authorization": f"Bearer {hs_token(sub, scope=role)}"}


async def recorded(bus: MemoryBus) -> list[CloudEvent]:
    events: list[CloudEvent] = []

    async def record(event: CloudEvent) -> None:
        events.append(event)

    await bus.subscribe("**", record, name="test-recorder")
    return events


def actors(events: list[CloudEvent]) -> list[tuple[str, Any]]:
    return [(e.type, e.to_dict().get("actor")) for e in events]


async def test_api_writes_carry_the_token_subject(tmp_path: Path) -> None:
    bus = MemoryBus()
    settings = ServiceSettings(project="device-api", package="device_api", events=True)
    app = create_app([Device], FileStorage(tmp_path / "data"), settings=settings, bus=bus,
                     auth=auth(tmp_path))
    events = await recorded(bus)
    async with serve_in_process(app) as client:
        body = {"name": "d1", "type": "server", "ipAddress": "10.0.0.1"}
        assert (await client.post("/devices", json=body, headers=as_user("alice"))).is_success
        patch = {**as_user("bob", "editor"), "Content-Type": "application/merge-patch+json"}
        assert (await client.patch("/devices/d1", content=b'{"port": 8443}',
                                   headers=patch)).is_success
        assert (await client.delete("/devices/d1", headers=as_user("carol"))).is_success
    assert actors(events) == [("io.fabrica.device.created", "alice"),
                              ("io.fabrica.device.patched", "bob"),
                              ("io.fabrica.device.deleted", "carol")]
    wire = events[0].to_dict()  # the other fields stay exactly as SPEC section 4 has them
    assert {k: wire[k] for k in ("resourcekind", "action", "subject")} == {
        "resourcekind": "Device", "action": "created", "subject": f"devices/{wire['resourceuid']}"}


async def test_without_auth_writes_are_anonymous(tmp_path: Path) -> None:
    bus = MemoryBus()
    settings = ServiceSettings(project="device-api", package="device_api", events=True)
    app = create_app([Device], FileStorage(tmp_path / "data"), settings=settings, bus=bus)
    events = await recorded(bus)
    async with serve_in_process(app) as client:
        body = {"name": "d1", "type": "server", "ipAddress": "10.0.0.1"}
        assert (await client.post("/devices", json=body)).is_success
    assert actors(events) == [("io.fabrica.device.created", "anonymous")]


async def test_reconcilers_and_the_garbage_collector_act_as_system_controller(
    tmp_path: Path,
) -> None:
    bus = MemoryBus()
    settings = ServiceSettings(project="lamps", package="lamps", events=True, reconcile=True)
    app = create_app([Lamp, Device], FileStorage(tmp_path / "data"), settings=settings,
                     bus=bus, reconcilers=[LampReconciler], auth=auth(tmp_path))
    events = await recorded(bus)
    async with serve_in_process(app) as client:
        lamp = (await client.post("/lamps", json={"name": "l1"}, headers=as_user("alice")))
        assert lamp.status_code == 201
        await app.state.service.controller.wait_idle()
        owned = {"metadata": {"name": "d1", "ownerReferences": [
            {"apiVersion": "v1", "kind": "Lamp", "name": "l1", "uid": lamp.json()["metadata"][
                "uid"]}]}, "spec": {"type": "server", "ipAddress": "10.0.0.1"}}
        assert (await client.post("/devices", json=owned, headers=as_user("bob"))).is_success
        deleted = await client.delete("/lamps/l1", headers=as_user("carol"))
        assert deleted.is_success
        await app.state.service.controller.wait_idle()
        await app.state.service.garbage_collector.wait_idle()
    seen = actors(events)
    assert seen[0] == ("io.fabrica.lamp.created", "alice")
    by_controller = [t for t, actor in seen if actor == "system:controller"]
    assert "io.fabrica.lamp.updated" in by_controller  # status, finalizer
    assert "io.fabrica.condition.ready" in by_controller
    assert "io.fabrica.lamp.lit" in by_controller  # a reconciler's own event
    assert ("io.fabrica.device.created", "bob") in seen
    assert ("io.fabrica.lamp.deleted", "carol") in seen
    assert ("io.fabrica.device.deleted", "system:controller") in seen  # the owner went
    assert all(actor for _, actor in seen), seen
