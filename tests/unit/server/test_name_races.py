"""Creates and deletes of one name at once, over HTTP, on every backend (issue 19, item 2).

Each round sends five creates and five deletes of the same name together. The change log
must stay a history in which a name belongs to at most one resource at a time, and lists,
label-selected lists and watches must keep answering from it. On the file backend a create
used to take its revision before it took the name, so a create racing a delete of the
same name could be logged before that delete. The watch cache then held the name twice and
answered 500 until a restart.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest

from fabrica import ServiceSettings
from fabrica.server import create_app
from fabrica.storage import FileStorage, SQLStorage, Storage
from tests._support.app import Device, serve_in_process
from tests._support.sqldb import database, migrate

WEB = {"type": "server", "ipAddress": "10.0.0.1"}
ROUNDS = 25


@pytest.fixture(params=["file", "sqlite", "postgresql"])
def storage(request, tmp_path) -> Any:
    if request.param == "file":
        yield FileStorage(tmp_path / "data")
        return
    with database(request.param, tmp_path) as url:
        migrate(url)
        yield SQLStorage(url)


@pytest.fixture
async def client(storage: Storage) -> AsyncIterator[httpx.AsyncClient]:
    app = create_app([Device], storage, settings=ServiceSettings(project="p", package="p"),
                     watch_poll_interval=0.05)
    async with serve_in_process(app) as client:
        yield client


def names_stay_unique(changes: list[Any]) -> None:
    """Replay the log: no change adds a name another live resource still holds."""
    holder: dict[str, str] = {}
    for change in changes:
        meta = change.document["metadata"]
        uid, name = meta["uid"], meta["name"]
        if change.type == "DELETED":
            assert holder.pop(name, None) == uid, f"revision {change.revision}: {change}"
        else:
            assert holder.setdefault(name, uid) == uid, (
                f"revision {change.revision} adds {name!r} for {uid} while "
                f"{holder[name]} holds it")


async def test_creates_and_deletes_of_one_name_at_once(client, storage) -> None:
    listed = await client.get("/devices")  # the kind is cached from here on
    start = listed.headers["x-resource-version"]

    async def create() -> int:
        return (await client.post("/devices", json={"name": "n", "labels": {"k": "v"},
                                                    **WEB})).status_code

    async def delete() -> int:
        return (await client.delete("/devices/n")).status_code

    for _ in range(ROUNDS):
        codes = await asyncio.gather(*[create() for _ in range(5)],
                                     *[delete() for _ in range(5)])
        assert set(codes) <= {201, 409, 200, 404}, codes
        for query in ({}, {"labelSelector": "k=v"}):
            answer = await client.get("/devices", params=query)
            assert answer.status_code == 200, answer.text

    names_stay_unique(await storage.changes("devices", 0, 10_000))
    final = await client.get("/devices")
    stored = sorted((d["metadata"]["uid"], d["metadata"]["resourceVersion"])
                    for d in await storage.list("devices"))
    assert sorted((d["metadata"]["uid"], d["metadata"]["resourceVersion"])
                  for d in final.json()) == stored
    # A watch from the first list replays to what a fresh list holds.
    watched = await client.get("/devices", params={"watch": "true", "timeoutSeconds": "1",
                                                   "resourceVersion": start})
    assert watched.status_code == 200, watched.text
    view: dict[str, str] = {}
    for line in watched.text.splitlines():
        event = json.loads(line)
        meta = event["object"]["metadata"]
        if event["type"] == "DELETED":
            view.pop(meta["uid"])
        else:
            view[meta["uid"]] = meta["resourceVersion"]
    assert sorted(view.items()) == stored
