"""`with_timeout`: a storage that stops answering gives `Unavailable` (503) in bounded time."""

from __future__ import annotations

import asyncio
import time

import pytest

from fabrica import ServiceSettings
from fabrica.server import create_app
from fabrica.storage import FileStorage, Storage, Unavailable, with_timeout
from tests._support.app import Device, serve_in_process
from tests._support.wait import eventually


class Freezable(FileStorage):
    """File storage whose operations wait while `frozen` is set, as a stopped database."""

    def __init__(self, root) -> None:
        super().__init__(root)
        self.thawed = asyncio.Event()
        self.thawed.set()

    async def get(self, collection, uid):
        await self.thawed.wait()
        return await super().get(collection, uid)

    async def list(self, collection, **kwargs):
        await self.thawed.wait()
        return await super().list(collection, **kwargs)

    async def create(self, collection, doc, snapshot=None):
        await self.thawed.wait()
        return await super().create(collection, doc, snapshot)

    async def changes(self, collection, after, limit=1000):
        await self.thawed.wait()
        return await super().changes(collection, after, limit)

    async def extra(self, value, *, option):  # a backend's own method, not in the protocol
        await self.thawed.wait()
        return (value, option)


async def test_without_a_bound_the_storage_is_itself(tmp_path):
    storage = FileStorage(tmp_path)
    assert with_timeout(storage, None) is storage and with_timeout(storage, 0) is storage


async def test_a_frozen_operation_raises_unavailable_after_the_bound(tmp_path):
    inner = Freezable(tmp_path)
    storage = with_timeout(inner, 0.2)
    assert isinstance(storage, Storage) and storage.name == "file"
    inner.thawed.clear()
    started = time.monotonic()
    with pytest.raises(Unavailable, match="within 0.2 s"):
        await storage.list("devices")
    assert time.monotonic() - started < 1
    inner.thawed.set()
    assert await storage.list("devices") == []
    await storage.close()


async def test_every_coroutine_method_is_bounded_with_its_options(tmp_path):
    inner = Freezable(tmp_path)
    storage = with_timeout(inner, 0.2)
    assert await storage.extra(1, option=2) == (1, 2)
    assert await storage.changes("devices", after=0, limit=5) == []
    assert await storage.latest("devices") == 0
    inner.thawed.clear()
    with pytest.raises(Unavailable, match="changes within 0.2 s"):
        await storage.changes("devices", after=0, limit=5)
    with pytest.raises(Unavailable, match="extra within 0.2 s"):
        await storage.extra(1, option=2)
    inner.thawed.set()
    await storage.close()


async def test_the_server_answers_503_with_retry_after_then_recovers(tmp_path):
    inner = Freezable(tmp_path)
    settings = ServiceSettings(project="device-api", package="device_api")
    app = create_app([Device], inner, settings=settings, storage_timeout=0.2)
    async with serve_in_process(app) as client:
        body = {"name": "web-01", "type": "server", "ipAddress": "10.0.0.1"}
        uid = (await client.post("/devices", json=body)).json()["metadata"]["uid"]
        inner.thawed.clear()
        for response in await asyncio.gather(
            client.get(f"/devices/{uid}"), client.get("/devices"),
            client.post("/devices", json={**body, "name": "web-02"}),
        ):
            assert response.status_code == 503, response.text
            assert response.headers["retry-after"] == "1"
        inner.thawed.set()

        async def late_create_done() -> bool:  # it finishes in the background
            names = [d["metadata"]["name"] for d in (await client.get("/devices")).json()]
            assert names == ["web-01", "web-02"]  # a timed-out write may still complete
            return True
        await eventually(late_create_done)
        assert (await client.get(f"/devices/{uid}")).status_code == 200
