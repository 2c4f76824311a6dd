"""Arbitrary JSON at every write endpoint, on the file backend, PostgreSQL and MariaDB:
whatever arrives, no answer is a 5xx, and the collection still lists and reads afterwards.

Hypothesis draws the bodies: any JSON value, strings and keys from all of Unicode including
lone surrogates, huge and tiny numbers, deep nesting; sometimes shaped like a resource so
that they get past the first checks and reach validation and storage.
"""

from __future__ import annotations

import asyncio
import json
import secrets
from collections.abc import Iterator

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from fabrica import ServiceSettings
from fabrica.server import create_app
from fabrica.storage import FileStorage, SQLStorage
from tests._support.app import Device, serve_in_process
from tests._support.sqldb import database, migrate

BACKENDS = ("file", "postgresql", "mariadb")
PATCH_TYPES = ("application/merge-patch+json", "application/json-patch+json",
               "application/shorthand-patch+json")

text = st.text(st.characters(codec=None, categories=None), max_size=12) | st.text(
    st.characters(min_codepoint=0xD800, max_codepoint=0xDFFF), min_size=1, max_size=2)
numbers = (st.integers() | st.integers(min_value=-(10**400), max_value=10**400)
           | st.floats(allow_nan=False, allow_infinity=False))
scalars = st.none() | st.booleans() | numbers | text
json_values = st.recursive(
    scalars,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(text, inner, max_size=4),
    max_leaves=20,
)


def deep(value: object, depth: int) -> object:
    for _ in range(depth):
        value = {"a": [value]}
    return value


SPEC_KEYS = st.sampled_from(["type", "ipAddress", "port", "tags", "name", "labels",
                             "annotations", "metadata", "spec", "apiVersion", "kind"])
resource_like = st.dictionaries(SPEC_KEYS | text, json_values, max_size=6)
bodies = (json_values | resource_like
          | st.builds(deep, json_values, st.integers(min_value=30, max_value=400)))


@pytest.fixture(scope="module", params=BACKENDS)
def service(request, tmp_path_factory) -> Iterator[tuple]:
    """One served app per backend, on a loop of its own that the examples share."""
    if request.param == "file":
        storage = FileStorage(tmp_path_factory.mktemp("fuzz"))
        yield from _serve(storage)
        return
    with database(request.param, tmp_path_factory.mktemp("fuzz-sql")) as url:
        migrate(url)
        yield from _serve(SQLStorage(url))


def _serve(storage) -> Iterator[tuple]:
    settings = ServiceSettings(project="device-api", package="device_api", events=True)
    app = create_app([Device], storage, settings=settings)
    loop = asyncio.new_event_loop()
    context = serve_in_process(app)
    client = loop.run_until_complete(context.__aenter__())
    try:
        body = {"name": f"fuzz-{secrets.token_hex(3)}", "type": "server", "ipAddress": "1"}
        created = loop.run_until_complete(client.post("/devices", json=body))
        assert created.status_code == 201, created.text
        yield loop, client, created.json()["metadata"]["uid"]
    finally:
        loop.run_until_complete(context.__aexit__(None, None, None))
        loop.close()


async def _throw(client, uid: str, raw: bytes, patch_type: str) -> list[tuple[str, int, str]]:
    json_headers = {"content-type": "application/json"}
    requests = [
        ("POST", "/devices", json_headers),
        ("PUT", f"/devices/{uid}", json_headers),
        ("PATCH", f"/devices/{uid}", {"content-type": patch_type}),
        ("PUT", f"/devices/{uid}/status", json_headers),
        ("PATCH", f"/devices/{uid}/status", {"content-type": patch_type}),
    ]
    answers = []
    for method, path, headers in requests:
        response = await client.request(method, path, content=raw, headers=headers)
        answers.append((f"{method} {path}", response.status_code, response.text[:300]))
    for path in ("/devices", "/devices?limit=1", f"/devices/{uid}"):
        response = await client.get(path)
        answers.append((f"GET {path}", response.status_code, response.text[:300]))
    return answers


@settings(max_examples=40, deadline=None, derandomize=True,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large,
                                 HealthCheck.function_scoped_fixture])
@given(body=bodies, patch_type=st.sampled_from(PATCH_TYPES))
def test_no_body_gets_a_5xx_and_the_collection_keeps_answering(service, body, patch_type):
    loop, client, uid = service
    try:
        raw = json.dumps(body).encode()
    except (ValueError, RecursionError):
        return  # not expressible as JSON text at all
    for request, status, text in loop.run_until_complete(_throw(client, uid, raw, patch_type)):
        assert status < 500, (request, status, text, raw[:300])
        if request.startswith("GET"):
            assert status == 200, (request, status, text, raw[:300])
