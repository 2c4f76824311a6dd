"""Hostile sizes, in-process, on the file backend, SQLite and PostgreSQL: every endpoint that
builds a document from a request, applies a patch or parses a selector answers the catalog of
tests/_support/hostile.py as it says (a 4xx with the SPEC section 3 body, never a 500), and
the resources aimed at are unchanged. The memory each case takes is measured in
tests/e2e/test_hostile_memory.py, against a server in a process of its own.

Among them, once: 17 JSON patch copies of a one-item list added 30 MB, and 14 on a larger
list took the server past 20 GB; a shorthand key of 1,000 parts, and a JSON patch nesting
copies 1,000 deep, raised RecursionError; a limit or timeoutSeconds of 5,000 digits was a
500 (int() refuses more than 4,300); a label selector was parsed in quadratic time.
"""

from __future__ import annotations

import json

import pytest
import pytest_asyncio

from fabrica import ServiceSettings
from fabrica.server import DEFAULT_MAX_BODY_SIZE, create_app
from fabrica.storage import FileStorage, SQLStorage
from tests._support.app import serve_in_process
from tests._support.hostile import (
    JSON_PATCH,
    MAX_BODY,
    MERGE,
    SETUP,
    SHORTHAND,
    TARGETS,
    Blob,
    Case,
    cases,
)
from tests._support.sqldb import database, migrate

BACKENDS = ("file", "sqlite", "postgresql")
CASES = cases()


def test_the_catalog_is_built_for_the_default_limit() -> None:
    assert MAX_BODY == DEFAULT_MAX_BODY_SIZE


@pytest.fixture(scope="module", params=BACKENDS)
def storage_url(request, tmp_path_factory):
    if request.param == "file":
        yield None
        return
    with database(request.param, tmp_path_factory.mktemp("sql")) as url:
        migrate(url)
        yield url


async def _serve(storage_url, directory, setup=SETUP):
    storage = FileStorage(directory) if storage_url is None else SQLStorage(storage_url)
    settings = ServiceSettings(project="blob-api", package="blob_api", events=True)
    async with serve_in_process(create_app([Blob], storage, settings=settings)) as c:
        for found in (await c.get("/blobs")).json():  # an earlier test's, on this database
            assert (await c.delete(f"/blobs/{found['metadata']['uid']}")).status_code == 200
        for method, path, body in setup:
            response = await c.request(method, path, content=body(),
                                       headers={"content-type": "application/json"})
            assert response.status_code in (200, 201), response.text
        yield c


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def served(storage_url, tmp_path_factory):
    """One server per backend for the whole catalog: no case changes what it aims at."""
    async for c in _serve(storage_url, tmp_path_factory.mktemp("catalog")):
        yield c


@pytest.fixture
async def client(storage_url, tmp_path):
    """A server with ``small`` only, for a test that changes it."""
    async for c in _serve(storage_url, tmp_path, SETUP[:2]):
        yield c


async def _targets(client) -> list[dict]:
    return [(await client.get(path)).json() for path in TARGETS]


def _error_body(response) -> None:
    body = response.json()
    assert isinstance(body["error"], str) and body["error"], body
    assert body["code"] == response.status_code, body
    assert set(body) <= {"error", "code", "details"}, body


@pytest.mark.asyncio(loop_scope="module")
@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
async def test_hostile_requests_get_their_answer_and_change_nothing(served, case: Case):
    client = served
    before = await _targets(client)
    response = await client.request(case.method, case.path, content=case.content(),
                                    headers=case.request_headers())
    assert response.status_code in case.expect, (case.name, response.status_code,
                                                 response.text[:300])
    if response.status_code >= 400:
        _error_body(response)
    assert await _targets(client) == before
    assert (await client.get("/blobs?limit=2")).status_code == 200


async def test_merge_patches_that_repeat_stop_at_the_limit(client):
    """Each patch is well within the body limit; together they may not build a document
    past it (nor past the larger size it may already have)."""
    chunk = "m" * 200_000
    sizes = []
    for index in range(10):
        response = await client.patch("/blobs/small", json={"data": {f"c{index}": chunk}},
                                      headers={"content-type": MERGE})
        if response.status_code == 413:
            break
        assert response.status_code == 200, response.text
        sizes.append(len(json.dumps(response.json()["spec"])))
    else:
        pytest.fail("ten patches of 200 KB each all applied")
    _error_body(response)
    assert len(sizes) == 5 and max(sizes) <= MAX_BODY
    assert len(json.dumps((await client.get("/blobs/small")).json()["spec"])) == sizes[-1]


@pytest.mark.parametrize("make", [
    lambda n: [{"op": "copy", "from": "/items", "path": "/items/-"}] * n,
    lambda n: [{"op": "copy", "from": "", "path": f"/data/k{i}"} for i in range(n)],
], ids=["a list into itself", "the root into new members"])
@pytest.mark.parametrize("part", ["", "/status"])
async def test_doubling_stops_before_the_copy_past_the_limit(client, make, part):
    """Seventeen copies took a server from kilobytes to 30 MB; a few more, to gigabytes.
    Copies within the limit still apply, and the one that would pass it is refused."""
    path = f"/blobs/small{part}"
    response = await client.patch(path, content=json.dumps(make(8)),
                                  headers={"content-type": JSON_PATCH})
    assert response.status_code == 200, response.text
    before = (await client.get("/blobs/small")).json()
    response = await client.patch(path, content=json.dumps(make(17)),
                                  headers={"content-type": JSON_PATCH})
    assert response.status_code == 413, response.text[:300]
    _error_body(response)
    assert (await client.get("/blobs/small")).json() == before


@pytest.mark.parametrize("part", ["", "/status"])
async def test_a_shorthand_key_of_many_parts_is_a_4xx(client, part):
    before = (await client.get("/blobs/small")).json()
    for parts in (64, 1000):
        key = ".".join(["data"] + ["a"] * (parts - 1))
        response = await client.patch(f"/blobs/small{part}", json={key: 1},
                                      headers={"content-type": SHORTHAND})
        assert response.status_code == 422, response.text[:300]
        _error_body(response)
    assert (await client.get("/blobs/small")).json() == before
    key = ".".join(["data"] + ["a"] * 62)  # 63 parts: the value lands at level 64
    response = await client.patch(f"/blobs/small{part}", json={key: {}},
                                  headers={"content-type": SHORTHAND})
    assert response.status_code == 200, response.text[:300]
    node = response.json()["status" if part else "spec"]["data"]
    for _ in range(62):
        node = node["a"]
    assert node == {}
