"""Input a hostile client sends: a clear 4xx, nothing stored, never a 500, on every backend.

Each case here once got through: lone UTF-16 surrogates (stored on PostgreSQL and MariaDB,
then every GET, list and event stream of the collection failed), Unicode digits in
``limit``, garbage inside continue tokens, names shaped like uids, JSON types a strict
service coerced, bodies of any content type, envelopes of another apiVersion.
"""

from __future__ import annotations

import base64
import json
import secrets

import pytest

from fabrica import ServiceSettings
from fabrica.resource import InvalidText
from fabrica.server import create_app
from fabrica.storage import FileStorage, SQLStorage
from tests._support.app import Device, serve_in_process
from tests._support.sqldb import database, migrate

BACKENDS = ("file", "sqlite", "postgresql", "mariadb")
MERGE = "application/merge-patch+json"
JSON_PATCH = "application/json-patch+json"
SHORTHAND = "application/shorthand-patch+json"


@pytest.fixture(scope="module", params=BACKENDS)
def backend(request, tmp_path_factory):
    if request.param == "file":
        yield "file", tmp_path_factory.mktemp("files")
        return
    with database(request.param, tmp_path_factory.mktemp("sql")) as url:
        migrate(url)
        yield request.param, url


def _app(backend, mode="strict"):
    name, where = backend
    storage = FileStorage(where) if name == "file" else SQLStorage(where)
    settings = ServiceSettings(project="device-api", package="device_api", validation_mode=mode,
                               events=True)
    return create_app([Device], storage, settings=settings)


@pytest.fixture
async def client(backend):
    async with serve_in_process(_app(backend)) as c:
        yield c


def _name() -> str:
    return f"d-{secrets.token_hex(4)}x"


def _body(name: str | None = None, **spec) -> dict:
    return {"name": name or _name(), "type": "server", "ipAddress": "10.0.0.1", **spec}


async def _create(client, **spec) -> dict:
    response = await client.post("/devices", json=_body(**spec))
    assert response.status_code == 201, response.text
    return response.json()


def _raw(document) -> bytes:
    """JSON as a client may send it: json.dumps writes a lone surrogate as \\ud800."""
    return json.dumps(document).encode()


def _fields(response) -> set[str]:
    return {d["field"] for d in response.json().get("details", [])}


async def _assert_collection_healthy(client) -> None:
    assert (await client.get("/devices")).status_code == 200
    assert (await client.get("/devices?limit=2")).status_code == 200


# -- lone surrogates ----------------------------------------------------------------------

SURROGATE_BODIES = [
    (_body(tags={"x": "\ud800"}), "tags.x"),
    (_body(tags={"\udfff": "x"}), "tags.\\udfff"),
    (_body(ipAddress="10.0.0.\udc00"), "ipAddress"),
    ({**_body(), "labels": {"a": "\ud800"}}, "labels.a"),
    ({**_body(), "annotations": {"note": "bad \ud83d"}}, "annotations.note"),
    ({**_body(), "name": "web\ud800"}, "name"),
    ({"metadata": {"name": "env-1", "annotations": {"k": "\ud800"}},
      "spec": {"type": "server", "ipAddress": "1"}}, "metadata.annotations.k"),
    ({"metadata": {"name": "env-2"}, "spec": {"type": "server", "ipAddress": "1",
                                                "tags": {"t": ["\ud800"]}}}, "spec.tags.t.0"),
]


@pytest.mark.parametrize(("body", "field"), SURROGATE_BODIES)
async def test_lone_surrogates_on_create_are_400_with_the_field_path(client, body, field):
    before = (await client.get("/devices")).json()
    response = await client.post("/devices", content=_raw(body),
                                 headers={"content-type": "application/json"})
    assert response.status_code == 400, response.text
    assert field in _fields(response)
    assert (await client.get("/devices")).json() == before
    await _assert_collection_healthy(client)


async def test_surrogates_as_raw_utf8_bytes_are_400(client):
    raw = _raw(_body(tags={"x": "SURROGATE"})).replace(b"SURROGATE", b"\xed\xa0\x80")
    response = await client.post("/devices", content=raw,
                                 headers={"content-type": "application/json"})
    assert response.status_code == 400 and "UTF-8" in response.json()["error"]


@pytest.mark.parametrize(("method", "path", "content_type", "body", "field"), [
    ("PUT", "", "application/json", _body(tags={"k": "\ud800"}), "tags.k"),
    ("PATCH", "", MERGE, {"tags": {"k": "\ud800"}}, "tags.k"),
    ("PATCH", "", JSON_PATCH, [{"op": "add", "path": "/tags/k", "value": "\ud800"}],
     "0.value"),
    ("PATCH", "", SHORTHAND, {"tags.k": "\ud800"}, "tags\\.k"),
    ("PUT", "/status", "application/json", {"health": "\ud800"}, "health"),
    ("PATCH", "/status", MERGE, {"\ud800": 1}, "\\ud800"),
])
async def test_lone_surrogates_on_every_write_are_400(client, method, path, content_type, body,
                                                      field):
    obj = await _create(client)
    uid = obj["metadata"]["uid"]
    if method == "PUT" and not path:
        body = {**body, "name": obj["metadata"]["name"]}
    response = await client.request(method, f"/devices/{uid}{path}", content=_raw(body),
                                    headers={"content-type": content_type})
    assert response.status_code == 400, response.text
    assert any(f.endswith(field.replace("\\.", ".")) or f == field for f in _fields(response))
    assert (await client.get(f"/devices/{uid}")).json() == obj
    await _assert_collection_healthy(client)


async def test_the_store_refuses_surrogates_from_any_writer(backend):
    """A reconciler writes through the store, not the API: the store checks too."""
    app = _app(backend)
    async with serve_in_process(app) as client:
        obj = await _create(client)
        store = app.state.service.store
        current = await store.get(Device, obj["metadata"]["uid"])
        bad = current.model_copy(update={"status": current.status.model_copy(
            update={"health": "\ud800"})})
        with pytest.raises(InvalidText) as caught:
            await store.update_status(bad)
        assert caught.value.path == "status.health"
        assert (await client.get(f"/devices/{obj['metadata']['uid']}")).json() == obj


# -- query strings ----------------------------------------------------------------------------

def _token(after) -> str:
    raw = json.dumps({"v": 1, "after": after}).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


@pytest.mark.parametrize("query", [
    "limit=%C2%B2", "limit=%D9%A3", "limit=-1", "limit=1001", "limit=1e3",
    f"continue={_token(chr(0))}", f"continue={_token(chr(0xD800))}",
    f"continue={_token('a' * 300)}", f"continue={_token('Name')}",
    "continue=" + base64.urlsafe_b64encode(b'{"v":1,"after":"a\xed\xa0\x80"}').decode(),
    "continue=" + base64.urlsafe_b64encode(b"[1]").decode(), "continue=%00",
    "continue=%ED%A0%80", "labelSelector=a%3D%ED%A0%80", "labelSelector=%00",
])
async def test_bad_query_strings_are_400(client, query):
    await _create(client)
    response = await client.get(f"/devices?{query}")
    assert response.status_code == 400, response.text
    await _assert_collection_healthy(client)


# -- names ------------------------------------------------------------------------------------

@pytest.mark.parametrize("name", ["dev-0123abcd", "dev-0123456789abcdef"])
async def test_names_shaped_like_this_kinds_uids_are_refused(client, name):
    for body in (_body(name), {"metadata": {"name": name},
                               "spec": {"type": "server", "ipAddress": "1"}}):
        response = await client.post("/devices", json=body)
        assert response.status_code == 400, response.text
        assert "uid" in response.json()["error"]


async def test_an_id_reaches_one_resource_only(client):
    target = await _create(client)
    uid = target["metadata"]["uid"]
    assert (await client.post("/devices", json=_body(uid))).status_code == 400
    # Other kinds' uid shapes, and near misses, are ordinary names.
    for name in ("rack-0123abcd", "dev-0123abc", "dev-0123abcdx"):
        assert (await client.post("/devices", json=_body(name))).status_code == 201
    assert (await client.delete(f"/devices/{uid}")).json()["uid"] == uid


@pytest.mark.parametrize("name", ["web\n", "web-01\n", "a\nb"])
async def test_names_with_a_trailing_newline_are_refused(client, name):
    assert (await client.post("/devices", json=_body(name))).status_code == 400


# -- strict JSON types --------------------------------------------------------------------

@pytest.mark.parametrize("value", [True, "443", 443.5, None, [443]])
async def test_strict_mode_takes_json_types_as_declared_on_create(client, value):
    response = await client.post("/devices", json=_body(port=value))
    assert response.status_code == 400, response.text
    assert "spec.port" in _fields(response)


@pytest.mark.parametrize(("method", "path", "content_type", "body", "field"), [
    ("PUT", "", "application/json", {"type": "server", "ipAddress": "1", "port": True},
     "spec.port"),
    ("PATCH", "", MERGE, {"port": "443"}, "spec.port"),
    ("PATCH", "", JSON_PATCH, [{"op": "replace", "path": "/port", "value": True}], "spec.port"),
    ("PATCH", "", SHORTHAND, {"port": "80"}, "spec.port"),
    ("PUT", "/status", "application/json", {"errorCount": "1"}, "status.errorCount"),
    ("PATCH", "/status", MERGE, {"errorCount": True}, "status.errorCount"),
    ("PATCH", "/status", SHORTHAND, {"health": 5}, "status.health"),
])
async def test_strict_mode_takes_json_types_as_declared_on_every_write(
    client, method, path, content_type, body, field
):
    obj = await _create(client)
    uid = obj["metadata"]["uid"]
    response = await client.request(method, f"/devices/{uid}{path}", content=json.dumps(body),
                                    headers={"content-type": content_type})
    assert response.status_code == 400, response.text
    assert field in _fields(response)
    assert (await client.get(f"/devices/{uid}")).json() == obj


async def test_strict_mode_still_reads_what_it_writes(client):
    obj = await _create(client, port=8443, tags={"a": "b"})
    uid = obj["metadata"]["uid"]
    assert obj["spec"]["port"] == 8443
    response = await client.put(f"/devices/{uid}", json={"apiVersion": "v1", "kind": "Device",
                                                         "metadata": obj["metadata"],
                                                         "spec": obj["spec"]})
    assert response.status_code == 200, response.text
    response = await client.put(f"/devices/{uid}/status", json=obj["status"])
    assert response.status_code == 200, response.text


async def test_warn_mode_coerces_and_warns_of_unknown_fields(backend):
    async with serve_in_process(_app(backend, mode="warn")) as client:
        response = await client.post("/devices", json=_body(port="443", colour="red"))
        assert response.status_code == 201, response.text
        assert response.json()["spec"]["port"] == 443
        assert "colour" in response.headers["warning"]


# -- content types and envelopes ----------------------------------------------------------

@pytest.mark.parametrize("content_type", ["text/plain", "application/xml",
                                          "application/x-www-form-urlencoded",
                                          "multipart/form-data; boundary=x", MERGE, "json"])
async def test_posts_and_puts_of_other_content_types_are_415(client, content_type):
    obj = await _create(client)
    uid = obj["metadata"]["uid"]
    for method, path, body in [("POST", "/devices", _body()),
                               ("PUT", f"/devices/{uid}", _body(obj["metadata"]["name"])),
                               ("PUT", f"/devices/{uid}/status", {"health": "ok"})]:
        response = await client.request(method, path, content=json.dumps(body),
                                        headers={"content-type": content_type})
        assert response.status_code == 415, (method, path, response.text)
    assert (await client.get(f"/devices/{uid}")).json() == obj


@pytest.mark.parametrize("content_type", ["application/json", "application/json; charset=utf-8",
                                          "Application/JSON;charset=UTF-8",
                                          "application/json;version=v1", None])
async def test_json_with_parameters_or_no_content_type_is_taken(client, content_type):
    headers = {} if content_type is None else {"content-type": content_type}
    response = await client.post("/devices", content=json.dumps(_body()), headers=headers)
    assert response.status_code == 201, response.text


@pytest.mark.parametrize(("envelope", "field"), [
    ({"apiVersion": "v99"}, "apiVersion"),
    ({"apiVersion": 1}, "apiVersion"),
    ({"kind": "Rack"}, "kind"),
    ({"apiVersion": "apps/v1", "kind": "Device"}, "apiVersion"),
])
async def test_foreign_envelopes_are_400(client, envelope, field):
    body = {**envelope, "metadata": {"name": _name()}, "spec": {"type": "server",
                                                                "ipAddress": "1"}}
    response = await client.post("/devices", json=body)
    assert response.status_code == 400, response.text
    assert field in _fields(response)
    obj = await _create(client)
    response = await client.put(f"/devices/{obj['metadata']['uid']}", json=body)
    assert response.status_code == 400, response.text
    flat = {**_body(), **envelope}
    assert (await client.post("/devices", json=flat)).status_code == 400
    status = {**envelope, "status": {"health": "x"}}
    response = await client.put(f"/devices/{obj['metadata']['uid']}/status", json=status)
    assert response.status_code == 400, response.text


async def test_deeply_nested_bodies_are_400(client):
    deep: object = "x"
    for _ in range(200):
        deep = {"a": deep}
    response = await client.post("/devices", json=_body(tags=deep))
    assert response.status_code == 400
    assert "nested" in response.json()["error"]
