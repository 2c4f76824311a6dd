"""`ReconcileClient`'s writes go through the store's one write path: finalizer edits and
`modify`/`modify_status` re-read and retry when someone else wrote first; `update` and
`update_status` stay compare-and-swap on the caller's object."""

from __future__ import annotations

import pytest

from fabrica.reconcile import ReconcileClient
from fabrica.storage import Conflict, FileStorage
from fabrica.store import ResourceStore
from tests._support.app import Device, DeviceSpec

WEB = DeviceSpec(type="server", ip_address="10.0.0.1")


@pytest.fixture
async def client(tmp_path):
    storage = FileStorage(tmp_path / "data")
    yield ReconcileClient(ResourceStore(storage, [Device]))
    await storage.close()


async def bump(client, name):
    """Someone else writes: the copies a reconciler holds are stale now."""
    await client.modify(Device, name, lambda d: d.model_copy(
        update={"spec": d.spec.model_copy(update={"port": d.spec.port + 1})}))


async def test_finalizer_edits_on_a_stale_copy_still_land(client):
    held = await client.create(Device, "web", WEB)
    await bump(client, "web")
    added = await client.add_finalizer(held, "example.com/x")
    assert added.metadata.finalizers == ["example.com/x"] and added.spec.port == 444
    assert await client.add_finalizer(held, "example.com/x") == added  # already there
    await bump(client, "web")
    removed = await client.remove_finalizer(held, "example.com/x")
    assert removed.metadata.finalizers == [] and removed.spec.port == 445


async def test_modify_status_keeps_the_spec_of_the_current_state(client):
    await client.create(Device, "web", WEB)
    await bump(client, "web")

    def healthy(current):
        current.status.health = "ok"
        return current

    result = await client.modify_status(Device, "web", healthy)
    assert result.status.health == "ok" and result.spec.port == 444
    assert result.metadata.generation == 2  # the status write did not count


async def test_update_is_still_compare_and_swap(client):
    held = await client.create(Device, "web", WEB)
    await bump(client, "web")
    with pytest.raises(Conflict):
        await client.update(held)
    with pytest.raises(Conflict):
        await client.update_status(held)
