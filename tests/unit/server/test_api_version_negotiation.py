"""API versions over HTTP, in-process (SPEC section 9): the example's Device is stored in
v2 and served in v1 too (deprecated). Reads and writes through each version, the lossless
round trip for every kind of write, unknown versions, warnings, OpenAPI."""

from __future__ import annotations

import json
from typing import Any

import pytest
from openapi_spec_validator import validate

from fabrica import Model, Resource, ServedVersion, ServiceSettings
from fabrica.events import MemoryBus
from fabrica.server import build_openapi, create_app
from fabrica.storage import FileStorage
from tests._support.app import Device as DeviceStoredInV1
from tests._support.app import serve_in_process
from tests._support.versions import load

device, device_v1 = load()
Device, DeviceV1 = device.Device, device_v1.DeviceV1
V1 = "application/json;version=v1"
V2 = "application/json;version=v2"


class ProbeSpec(Model):
    target: str
    timeout_seconds: int = 5


class ProbeStatus(Model):
    phase: str = ""
    version: str = ""
    last_seen: str = ""  # v2 only


class Probe(Resource[ProbeSpec, ProbeStatus], prefix="prb", version="v2", versioning=True):
    """Spec history and a status that v1 cannot fully express."""


class ProbeV1Spec(Model):
    target: str
    timeout: int = 5


class ProbeV1Status(Model):
    phase: str = ""
    version: str = ""


class ProbeV1(ServedVersion[ProbeV1Spec, ProbeV1Status], of=Probe, version="v1"):
    @staticmethod
    def spec_to_storage(spec: ProbeV1Spec) -> ProbeSpec:
        return ProbeSpec(target=spec.target, timeout_seconds=spec.timeout)

    @staticmethod
    def spec_from_storage(spec: ProbeSpec) -> ProbeV1Spec:
        return ProbeV1Spec(target=spec.target, timeout=spec.timeout_seconds)

    @staticmethod
    def status_to_storage(status: ProbeV1Status) -> ProbeStatus:
        return ProbeStatus(phase=status.phase, version=status.version)

    @staticmethod
    def status_from_storage(status: ProbeStatus) -> ProbeV1Status:
        return ProbeV1Status(phase=status.phase, version=status.version)


class Gadget(Resource[ProbeSpec, ProbeStatus], prefix="gad", version="v2", default_version="v1"):
    """A kind whose default version is not its storage version."""


class GadgetV1(ServedVersion[ProbeV1Spec, ProbeStatus], of=Gadget, version="v1"):
    spec_to_storage = ProbeV1.spec_to_storage
    spec_from_storage = ProbeV1.spec_from_storage


KINDS = [Device, Probe, Gadget]
VERSIONS = [DeviceV1, ProbeV1, GadgetV1]


def app_for(tmp_path: Any, **options: Any) -> Any:
    settings = ServiceSettings(project="device-api", package="device_api")
    return create_app(KINDS, FileStorage(tmp_path / "data"), settings=settings,
                      versions=VERSIONS, **options)


@pytest.fixture
async def client(tmp_path: Any) -> Any:
    async with serve_in_process(app_for(tmp_path)) as c:
        yield c


async def make_device(client: Any, **spec: Any) -> dict[str, Any]:
    body = {"name": "web-01", "type": "server", "address": "10.0.0.1", "location": "rack-7",
            "tags": {"a": "1"}, **spec}
    created = await client.post("/devices", json=body)
    assert created.status_code == 201, created.text
    return created.json()


async def read_v2(client: Any, id: str = "web-01") -> dict[str, Any]:
    got = await client.get(f"/devices/{id}")
    assert got.status_code == 200 and got.headers["X-Schema-Version"] == "v2"
    return got.json()


async def test_reads_in_each_version(client: Any) -> None:
    await make_device(client)
    v2 = await client.get("/devices/web-01")
    assert v2.headers["X-Schema-Version"] == "v2" and "Warning" not in v2.headers
    body = v2.json()
    assert body["apiVersion"] == body["schemaVersion"] == "v2"
    assert body["spec"] == {"type": "server", "address": "10.0.0.1", "port": 443,
                            "tags": {"a": "1"}, "location": "rack-7"}
    v1 = await client.get("/devices/web-01", headers={"Accept": V1})
    assert v1.status_code == 200 and v1.headers["X-Schema-Version"] == "v1"
    assert v1.json()["apiVersion"] == v1.json()["schemaVersion"] == "v1"
    assert v1.json()["spec"] == {"type": "server", "ipAddress": "10.0.0.1", "port": 443,
                                 "tags": {"a": "1"}}
    assert v1.json()["metadata"] == body["metadata"] and v1.headers["ETag"] == v2.headers["ETag"]
    assert v1.headers["Deprecation"] == "true"
    assert v1.headers["Warning"] == '299 - "Device v1 is deprecated; use v2"'
    listed = await client.get("/devices", headers={"Accept": f"{V1}, application/json;q=0.5"})
    assert listed.headers["X-Schema-Version"] == "v1"
    assert [item["spec"]["ipAddress"] for item in listed.json()] == ["10.0.0.1"]
    explicit = await client.get("/devices", headers={"Accept": V2})
    assert explicit.json()[0]["spec"]["address"] == "10.0.0.1"
    assert "Deprecation" not in explicit.headers
    cached = await client.get("/devices/web-01", headers={"Accept": V1})
    assert cached.content == v1.content  # the wire cache keeps each version apart


async def test_304_and_head_carry_the_version(client: Any) -> None:
    created = await make_device(client)
    tag = f'"{created["metadata"]["resourceVersion"]}"'
    same = await client.get("/devices/web-01", headers={"Accept": V1, "If-None-Match": tag})
    assert same.status_code == 304 and same.headers["X-Schema-Version"] == "v1"
    head = await client.head("/devices/web-01", headers={"Accept": V1})
    assert head.status_code == 200 and head.headers["X-Schema-Version"] == "v1"


@pytest.mark.parametrize("how", ["content-type", "schemaVersion", "apiVersion"])
async def test_create_through_v1(client: Any, how: str) -> None:
    flat = {"name": "old-01", "type": "switch", "ipAddress": "10.0.0.2", "port": 22}
    if how == "content-type":
        created = await client.post("/devices", content=json.dumps(flat),
                                    headers={"Content-Type": V1})
    else:
        envelope = {how: "v1", "kind": "Device", "metadata": {"name": "old-01"},
                    "spec": {k: v for k, v in flat.items() if k != "name"}}
        created = await client.post("/devices", json=envelope)
    assert created.status_code == 201, created.text
    assert created.headers["X-Schema-Version"] == "v1" and "Warning" in created.headers
    assert created.json()["spec"] == {"type": "switch", "ipAddress": "10.0.0.2", "port": 22,
                                      "tags": {}}
    stored = await read_v2(client, "old-01")
    assert stored["spec"] == {"type": "switch", "address": "10.0.0.2", "port": 22, "tags": {},
                              "location": ""}


async def test_a_write_answers_in_the_accepted_version(client: Any) -> None:
    created = await client.post("/devices", content=json.dumps(
        {"name": "x-01", "type": "server", "ipAddress": "10.0.0.3"}),
        headers={"Content-Type": V1, "Accept": V2})
    assert created.status_code == 201, created.text
    assert created.headers["X-Schema-Version"] == "v2"
    assert created.json()["spec"]["address"] == "10.0.0.3"


async def test_v1_validation_errors_name_v1_fields(client: Any) -> None:
    bad = await client.post("/devices", content=json.dumps(
        {"name": "x-01", "type": "server", "address": "10.0.0.3"}),
        headers={"Content-Type": V1})
    assert bad.status_code == 400
    fields = {d["field"] for d in bad.json()["details"]}
    assert "spec.ipAddress" in fields and "spec.address" in fields  # missing; unknown in v1


# -- the round trip: a write through v1 never loses what only v2 can say ----------------

V1_WRITES = {
    "put-flat": ("PUT", "", "application/json;version=v1",
                 {"type": "server", "ipAddress": "10.9.9.9", "port": 8443, "tags": {"a": "1"}}),
    "put-envelope": ("PUT", "", "application/json",
                     {"schemaVersion": "v1", "metadata": {"labels": {"l": "x"}},
                      "spec": {"type": "server", "ipAddress": "10.9.9.9", "port": 8443,
                               "tags": {"a": "1"}}}),
    "merge": ("PATCH", "", "application/merge-patch+json;version=v1",
              {"ipAddress": "10.9.9.9", "port": 8443}),
    "json-patch": ("PATCH", "", "application/json-patch+json; version=v1",
                   [{"op": "replace", "path": "/ipAddress", "value": "10.9.9.9"},
                    {"op": "replace", "path": "/port", "value": 8443}]),
    "shorthand": ("PATCH", "", 'application/shorthand-patch+json;version="v1"',
                  {"ipAddress": "10.9.9.9", "port": 8443}),
    "plain-json-patch": ("PATCH", "", "application/json;version=v1",
                         {"ipAddress": "10.9.9.9", "port": 8443}),
}


@pytest.mark.parametrize("write", sorted(V1_WRITES))
async def test_spec_writes_through_v1_keep_v2_only_fields(client: Any, write: str) -> None:
    await make_device(client)
    method, suffix, content_type, body = V1_WRITES[write]
    done = await client.request(method, f"/devices/web-01{suffix}", content=json.dumps(body),
                                headers={"Content-Type": content_type})
    assert done.status_code == 200, done.text
    assert done.headers["X-Schema-Version"] == "v1"
    assert done.json()["spec"]["ipAddress"] == "10.9.9.9"
    after = await read_v2(client)
    assert after["spec"] == {"type": "server", "address": "10.9.9.9", "port": 8443,
                             "tags": {"a": "1"}, "location": "rack-7"}
    assert after["metadata"]["generation"] == 2


async def test_a_v1_write_that_changes_nothing_changes_nothing(client: Any) -> None:
    await make_device(client)
    v1 = (await client.get("/devices/web-01", headers={"Accept": V1})).json()
    put = await client.put("/devices/web-01", json=v1)  # apiVersion v1 says what it is
    assert put.status_code == 200, put.text
    after = await read_v2(client)
    assert after["spec"]["location"] == "rack-7" and after["metadata"]["generation"] == 1


async def test_v2_writes_still_change_v2_only_fields(client: Any) -> None:
    await make_device(client)
    patched = await client.patch("/devices/web-01", json={"location": None},
                                 headers={"Content-Type": "application/merge-patch+json"})
    assert patched.status_code == 200 and patched.json()["spec"]["location"] == ""


async def probe(client: Any) -> dict[str, Any]:
    created = await client.post("/probes", json={"name": "p1", "target": "a", "timeoutSeconds": 9})
    assert created.status_code == 201, created.text
    status = await client.put("/probes/p1/status", json={"phase": "Up", "lastSeen": "t1"})
    assert status.status_code == 200, status.text
    return status.json()


STATUS_WRITES = {
    "put": ("PUT", "application/json;version=v1", {"phase": "Down"}),
    "put-whole-resource": ("PUT", "application/json;version=v1",
                           {"apiVersion": "v1", "status": {"phase": "Down"}}),
    "merge": ("PATCH", "application/merge-patch+json;version=v1", {"phase": "Down"}),
    "json-patch": ("PATCH", "application/json-patch+json;version=v1",
                   [{"op": "replace", "path": "/phase", "value": "Down"}]),
    "shorthand": ("PATCH", "application/shorthand-patch+json;version=v1", {"phase": "Down"}),
}


@pytest.mark.parametrize("write", sorted(STATUS_WRITES))
async def test_status_writes_through_v1_keep_v2_only_fields(client: Any, write: str) -> None:
    await probe(client)
    method, content_type, body = STATUS_WRITES[write]
    done = await client.request(method, "/probes/p1/status", content=json.dumps(body),
                                headers={"Content-Type": content_type})
    assert done.status_code == 200, done.text
    assert done.json()["status"] == {"phase": "Down", "version": "v1"}
    after = (await client.get("/probes/p1")).json()
    assert after["status"] == {"phase": "Down", "version": "v1", "lastSeen": "t1"}
    assert after["spec"] == {"target": "a", "timeoutSeconds": 9}


async def test_spec_history_in_each_version(client: Any) -> None:
    await probe(client)
    changed = await client.patch("/probes/p1", content=json.dumps({"timeout": 3}),
                                 headers={"Content-Type": "application/merge-patch+json;"
                                                          "version=v1"})
    assert changed.status_code == 200, changed.text
    v2 = await client.get("/probes/p1/versions")
    assert [s["spec"] for s in v2.json()] == [{"target": "a", "timeoutSeconds": 9},
                                              {"target": "a", "timeoutSeconds": 3}]
    assert v2.headers["X-Schema-Version"] == "v2"
    v1 = await client.get("/probes/p1/versions", headers={"Accept": V1})
    assert [s["spec"] for s in v1.json()] == [{"target": "a", "timeout": 9},
                                              {"target": "a", "timeout": 3}]
    one = await client.get("/probes/p1/versions/v2", headers={"Accept": V1})
    assert one.json()["spec"] == {"target": "a", "timeout": 3}
    assert one.json()["schemaVersion"] == "v1"


async def test_a_kind_may_default_to_another_version(client: Any) -> None:
    created = await client.post("/gadgets", json={"name": "g1", "target": "a", "timeout": 2})
    assert created.status_code == 201, created.text
    assert created.headers["X-Schema-Version"] == "v1"
    assert (await client.get("/gadgets/g1")).json()["spec"] == {"target": "a", "timeout": 2}
    v2 = await client.get("/gadgets/g1", headers={"Accept": V2})
    assert v2.json()["spec"] == {"target": "a", "timeoutSeconds": 2}


# -- unknown versions ----------------------------------------------------------------------

@pytest.mark.parametrize(("method", "path", "headers", "body", "code"), [
    ("GET", "/devices", {"Accept": "application/json;version=v9"}, None, 406),
    ("GET", "/devices/web-01", {"Accept": "application/json;version=v3"}, None, 406),
    ("DELETE", "/devices/web-01", {"Accept": "application/json;version=v3"}, None, 406),
    ("POST", "/devices", {"Content-Type": "application/json;version=v9"},
     {"name": "n", "type": "server", "address": "a"}, 415),
    ("PUT", "/devices/web-01", {"Content-Type": "application/json;version=v9"},
     {"type": "server", "address": "a"}, 415),
    ("PATCH", "/devices/web-01", {"Content-Type": "application/merge-patch+json;version=v9"},
     {"port": 1}, 415),
    ("PATCH", "/devices/web-01/status",
     {"Content-Type": "application/json-patch+json;version=v9"}, [], 415),
    ("POST", "/devices", {}, {"schemaVersion": "v9", "metadata": {"name": "n"},
                             "spec": {"type": "server", "address": "a"}}, 400),
    ("POST", "/devices", {"Content-Type": V1}, {"schemaVersion": "v2", "metadata": {
        "name": "n"}, "spec": {"type": "server", "address": "a"}}, 400),
])
async def test_unknown_versions_are_refused_and_change_nothing(
    client: Any, method: str, path: str, headers: dict[str, str], body: Any, code: int
) -> None:
    created = await make_device(client)
    content = None if body is None else json.dumps(body)
    answer = await client.request(method, path, content=content, headers=headers)
    assert answer.status_code == code, answer.text
    assert answer.json()["code"] == code
    if code != 400 or "v9" in answer.text:
        assert "served: v2, v1" in answer.json()["error"]
    assert (await read_v2(client)) == created
    assert [d["metadata"]["name"] for d in (await client.get("/devices")).json()] == ["web-01"]


async def test_accept_picks_the_first_served_version(client: Any) -> None:
    await make_device(client)
    got = await client.get("/devices/web-01", headers={
        "Accept": "application/json;version=v9, application/json;version=v1;q=0.8"})
    assert got.status_code == 200 and got.headers["X-Schema-Version"] == "v1"


# -- storage moved on: data stored by the v1 kind is still served ---------------------------

async def test_documents_stored_in_v1_are_read_and_rewritten_in_v2(tmp_path: Any) -> None:
    settings = ServiceSettings(project="device-api", package="device_api")
    old = create_app([DeviceStoredInV1], FileStorage(tmp_path / "data"), settings=settings)
    async with serve_in_process(old) as c:
        made = await c.post("/devices", json={"name": "legacy", "type": "router",
                                              "ipAddress": "10.1.1.1", "tags": {"t": "x"}})
        assert made.status_code == 201 and made.json()["schemaVersion"] == "v1"
    async with serve_in_process(app_for(tmp_path)) as c:
        v2 = await read_v2(c, "legacy")
        assert v2["spec"] == {"type": "router", "address": "10.1.1.1", "port": 443,
                              "tags": {"t": "x"}, "location": ""}
        v1 = await c.get("/devices/legacy", headers={"Accept": V1})
        assert v1.json()["spec"]["ipAddress"] == "10.1.1.1"
        patched = await c.patch("/devices/legacy", json={"location": "dc-2"})
        assert patched.status_code == 200, patched.text
        assert (await read_v2(c, "legacy"))["spec"]["location"] == "dc-2"
    raw = next((tmp_path / "data" / "devices").glob("dev-*.json"))
    assert json.loads(raw.read_text())["schemaVersion"] == "v2"


async def test_events_carry_the_storage_version(tmp_path: Any) -> None:
    bus = MemoryBus()
    async with serve_in_process(app_for(tmp_path, bus=bus)) as c:
        async with bus.stream("io.fabrica.device.*") as stream:
            created = await c.post("/devices", content=json.dumps(
                {"name": "e-01", "type": "server", "ipAddress": "10.0.0.5"}),
                headers={"Content-Type": V1})
            assert created.status_code == 201
            event = await anext(stream)
    resource = event.data["resource"]
    assert resource["apiVersion"] == resource["schemaVersion"] == "v2"
    assert resource["spec"]["address"] == "10.0.0.5"


# -- OpenAPI -----------------------------------------------------------------------------

def test_openapi_documents_every_served_version() -> None:
    doc = build_openapi(KINDS, title="t", versions=VERSIONS)
    validate(doc)
    schemas = doc["components"]["schemas"]
    assert {"DeviceV1", "DeviceV1Spec", "DeviceV1Create", "DeviceV1Write"} <= set(schemas)
    assert schemas["DeviceV1"]["deprecated"] is True
    assert "ipAddress" in schemas["DeviceV1Spec"]["properties"]
    assert schemas["DeviceV1Spec"]["additionalProperties"] is False
    get = doc["paths"]["/devices/{id}"]["get"]["responses"]
    assert get["200"]["content"]["application/json;version=v1"]["schema"] == {
        "$ref": "#/components/schemas/DeviceV1"}
    assert get["200"]["content"]["application/json;version=v2"]["schema"] == {
        "$ref": "#/components/schemas/Device"}
    assert get["200"]["content"]["application/json"]["schema"] == {"anyOf": [
        {"$ref": "#/components/schemas/Device"}, {"$ref": "#/components/schemas/DeviceV1"}]}
    assert {"X-Schema-Version", "Warning", "Deprecation"} <= set(get["200"]["headers"])
    assert "406" in get
    create = doc["paths"]["/devices"]["post"]["requestBody"]["content"]
    assert create["application/json;version=v1"]["schema"]["$ref"].endswith("/DeviceV1Create")
    patch = doc["paths"]["/devices/{id}"]["patch"]
    assert "application/json-patch+json;version=v1" in patch["requestBody"]["content"]
    assert "415" in patch["responses"]
    status = doc["paths"]["/probes/{id}/status"]["put"]["requestBody"]["content"]
    assert status["application/json;version=v1"]["schema"]["$ref"].endswith("ProbeV1Status")
    gadget = doc["paths"]["/gadgets"]["post"]["requestBody"]["content"]["application/json"]
    assert gadget["schema"]["$ref"].endswith("/GadgetV1Create")  # the default version
    tag = next(t for t in doc["tags"] if t["name"] == "Device")
    assert "v2 (storage, default), v1 (deprecated)" in tag["description"]


# -- declaring versions --------------------------------------------------------------------

def test_a_missing_conversion_is_refused_when_the_class_is_defined() -> None:
    with pytest.raises(TypeError, match="missing the conversion spec_from_storage"):
        class Broken(ServedVersion[ProbeV1Spec, ProbeStatus], of=Probe, version="v3"):
            @staticmethod
            def spec_to_storage(spec: ProbeV1Spec) -> ProbeSpec:
                return ProbeSpec(target=spec.target)


def test_a_status_of_its_own_needs_status_conversions() -> None:
    with pytest.raises(TypeError, match="status_to_storage and status_from_storage"):
        class Broken(ServedVersion[ProbeSpec, ProbeV1Status], of=Probe, version="v3"):
            pass


@pytest.mark.parametrize(("keywords", "message"), [
    ({"of": Probe, "version": "v2"}, "already Probe's storage version"),
    ({"of": Probe, "version": "2"}, "not an API version"),
    ({"of": Probe, "version": "v1beta"}, "not an API version"),
    ({"of": ProbeSpec, "version": "v1"}, "of= must name the kind"),
])
def test_bad_declarations(keywords: dict[str, Any], message: str) -> None:
    with pytest.raises(TypeError, match=message):
        type("Broken", (ServedVersion[ProbeSpec, ProbeStatus],), {}, **keywords)


def test_a_version_served_twice_is_refused(tmp_path: Any) -> None:
    class Again(ServedVersion[ProbeV1Spec, ProbeV1Status], of=Probe, version="v1"):
        spec_to_storage = ProbeV1.spec_to_storage
        spec_from_storage = ProbeV1.spec_from_storage
        status_to_storage = ProbeV1.status_to_storage
        status_from_storage = ProbeV1.status_from_storage

    with pytest.raises(ValueError, match="Probe v1 is served twice: by ProbeV1 and Again"):
        create_app([Probe], FileStorage(tmp_path), versions=[ProbeV1, Again])


def test_bad_default_version() -> None:
    class Lonely(Resource[ProbeSpec, ProbeStatus], prefix="lon", default_version="v7"):
        pass

    with pytest.raises(ValueError, match="default_version 'v7' is not served"):
        build_openapi([Lonely], title="t")
    with pytest.raises(TypeError, match="not an API version"):
        class Odd(Resource[ProbeSpec, ProbeStatus], prefix="odd", version="version2"):
            pass
