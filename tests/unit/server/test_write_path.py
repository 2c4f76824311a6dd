"""Handlers are parse → store → respond: one read of the document per write."""

from __future__ import annotations

import pytest

from fabrica import ServiceSettings
from fabrica.server import create_app
from tests._support.app import Device, serve_in_process
from tests._support.storage import CountingStorage

WEB = {"type": "server", "ipAddress": "10.0.0.1"}


@pytest.fixture
async def served(tmp_path):
    storage = CountingStorage(tmp_path / "data")
    app = create_app([Device], storage, settings=ServiceSettings(project="p", package="p"))
    async with serve_in_process(app) as client:
        yield client, storage


@pytest.mark.parametrize("method,path,body", [
    ("PUT", "", {**WEB, "port": 8443}),
    ("PATCH", "", {"port": 8443}),
    ("PUT", "/status", {"health": "ok"}),
    ("PATCH", "/status", {"health": "ok"}),
])
async def test_a_write_reads_the_document_once(served, method, path, body):
    client, storage = served
    uid = (await client.post("/devices", json={"name": "web", **WEB})).json()["metadata"]["uid"]
    for id, read in ((uid, "get"), ("web", "get_by_name")):
        storage.calls.clear()
        headers = {"Content-Type": "application/merge-patch+json"} if method == "PATCH" else {}
        answer = await client.request(method, f"/devices/{id}{path}", json=body,
                                      headers=headers)
        assert answer.status_code == 200, answer.text
        assert storage.calls == [read, "update"]  # was three reads: handler, store, backend


async def test_if_match_star_means_exists_and_a_stale_tag_is_412(served):
    client, _ = served
    created = await client.post("/devices", json={"name": "web", **WEB})
    stale = created.headers["ETag"]
    assert (await client.put("/devices/web", json=WEB, headers={"If-Match": "*"})
            ).status_code == 200
    refused = await client.put("/devices/web", json=WEB, headers={"If-Match": stale})
    assert refused.status_code == 412
    gone = await client.delete("/devices/web", headers={"If-Match": stale})
    assert gone.status_code == 412
    assert (await client.delete("/devices/web")).status_code == 200
