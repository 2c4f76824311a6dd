import pytest

from tests._support.app import Device, make_client

WEB = {"name": "web-01", "type": "server", "ipAddress": "10.0.0.1"}


async def create(client, body=None):
    response = await client.post("/devices", json=body or WEB)
    assert response.status_code == 201, response.text
    return response.json()


async def test_create_flat_returns_the_resource(client):
    response = await client.post("/devices", json={**WEB, "labels": {"rack": "r1"},
                                             "annotations": {"note": "x"}})
    assert response.status_code == 201
    obj = response.json()
    meta = obj["metadata"]
    assert (obj["apiVersion"], obj["kind"], obj["schemaVersion"]) == ("v1", "Device", "v1")
    assert meta["name"] == "web-01" and meta["labels"] == {"rack": "r1"}
    assert meta["annotations"] == {"note": "x"}
    assert meta["uid"].startswith("dev-") and len(meta["uid"]) >= 12
    assert (meta["generation"], meta["resourceVersion"]) == (1, "1")
    assert meta["createdAt"].endswith("Z") and meta["createdAt"] == meta["updatedAt"]
    assert obj["spec"] == {"type": "server", "ipAddress": "10.0.0.1", "port": 443, "tags": {}}
    assert obj["status"] == {"health": "unknown", "errorCount": 0}
    assert response.headers["location"] == f"/devices/{meta['uid']}"
    assert response.headers["etag"] == '"1"'


async def test_create_envelope_ignores_status(client):
    obj = await create(client, {"apiVersion": "v1", "kind": "Device",
                          "metadata": {"name": "sw-1", "labels": {"a": "b"}},
                          "spec": {"type": "switch", "ip_address": "10.0.0.2"},
                          "status": {"health": "fake"}})
    assert obj["spec"]["ipAddress"] == "10.0.0.2"
    assert obj["metadata"]["labels"] == {"a": "b"}
    assert obj["status"]["health"] == "unknown"


async def test_get_by_uid_and_by_name(client):
    obj = await create(client)
    assert (await client.get(f"/devices/{obj['metadata']['uid']}")).json() == obj
    by_name = await client.get("/devices/web-01")
    assert by_name.json() == obj and by_name.headers["etag"] == '"1"'


async def test_list(client):
    assert (await client.get("/devices")).json() == []
    await create(client, {**WEB, "name": "b"})
    await create(client, {**WEB, "name": "a"})
    assert [o["metadata"]["name"] for o in (await client.get("/devices")).json()] == ["a", "b"]


@pytest.mark.parametrize("path", ["/devices/nope", "/devices/dev-0123abcd",
                                  "/devices/..%2F..%2Fetc%2Fpasswd", "/devices/%2e%2e",
                                  "/devices/Web-01"])
async def test_unknown_ids_are_404(client, path):
    await create(client)
    response = await client.get(path)
    assert response.status_code == 404
    assert response.json()["code"] == 404 and response.json()["error"]


async def test_validation_errors_list_each_field(client):
    response = await client.post("/devices", json={"name": "x", "type": "toaster", "port": 0,
                                             "bogus": 1})
    assert response.status_code == 400
    body = response.json()
    assert body["code"] == 400
    fields = {d["field"] for d in body["details"]}
    assert fields == {"spec.type", "spec.port", "spec.ipAddress", "spec.bogus"}
    assert (await client.get("/devices")).json() == []


@pytest.mark.parametrize("body, field", [
    ({"type": "server", "ipAddress": "x"}, "metadata.name"),
    ({**WEB, "name": "Not_DNS"}, "name"),
    ({**WEB, "labels": {"a": 1}}, "labels"),
    ({"metadata": {"name": "x"}, "spec": {"type": "server", "ipAddress": "x", "port": "p"}},
     "spec.port"),
    ({"metadata": {"name": "x"}, "spec": []}, "spec"),
    ({"kind": "Other", "metadata": {"name": "x"}, "spec": {}}, "kind"),
])
async def test_bad_bodies_are_400_with_field(client, body, field):
    response = await client.post("/devices", json=body)
    assert response.status_code == 400, response.text
    assert field in {d["field"] for d in response.json()["details"]}


@pytest.mark.parametrize("raw", [b"{not json", b"[1, 2]", b"", b'"text"', b"\xff\xfe",
                                 b"[" * 100000])
async def test_malformed_json_is_400(client, raw):
    response = await client.post("/devices", content=raw,
                                 headers={"content-type": "application/json"})
    assert response.status_code == 400
    assert (await client.get("/devices")).json() == []


async def test_duplicate_name_is_409(client):
    await create(client)
    response = await client.post("/devices", json=WEB)
    assert response.status_code == 409
    assert "web-01" in response.json()["error"]
    assert len((await client.get("/devices")).json()) == 1


async def test_body_too_large_is_413(tmp_path):
    async with make_client(tmp_path, max_body_size=200) as client:
        response = await client.post("/devices", json={**WEB, "tags": {"k": "v" * 500}})
        assert response.status_code == 413
        assert response.json()["code"] == 413
        assert (await client.get("/devices")).json() == []


async def test_put_replaces_spec_and_bumps_generation_only_on_change(client):
    obj = await create(client)
    uid = obj["metadata"]["uid"]
    same = (await client.put(f"/devices/{uid}", json=WEB)).json()
    assert same["metadata"]["generation"] == 1
    assert same["metadata"]["resourceVersion"] != obj["metadata"]["resourceVersion"]
    changed = await client.put("/devices/web-01", json={**WEB, "port": 8443, "labels": {"x": "y"}})
    assert changed.status_code == 200
    body = changed.json()
    assert body["spec"]["port"] == 8443 and body["metadata"]["generation"] == 2
    assert body["metadata"]["labels"] == {"x": "y"}
    assert body["metadata"]["createdAt"] == obj["metadata"]["createdAt"]
    assert body["metadata"]["updatedAt"] > obj["metadata"]["updatedAt"]


async def test_put_never_changes_status(client):
    await create(client)
    await client.put("/devices/web-01/status", json={"health": "ok"})
    body = (await client.put("/devices/web-01", json={**WEB, "status": {"health": "bad"}})).json()
    assert body["status"]["health"] == "ok"


async def test_put_keeps_labels_when_not_given(client):
    await create(client, {**WEB, "labels": {"keep": "me"}})
    body = (await client.put("/devices/web-01", json={"type": "router", "ipAddress": "1"})).json()
    assert body["metadata"]["labels"] == {"keep": "me"}


async def test_put_with_stale_resource_version_is_409(client):
    await create(client)
    await client.put("/devices/web-01", json={**WEB, "port": 1})
    stale = {"metadata": {"name": "web-01", "resourceVersion": "1"},
             "spec": {"type": "server", "ipAddress": "x"}}
    response = await client.put("/devices/web-01", json=stale)
    assert response.status_code == 409
    assert (await client.get("/devices/web-01")).json()["spec"]["port"] == 1
    current = {**stale, "metadata": {"name": "web-01", "resourceVersion": "2"}}
    assert (await client.put("/devices/web-01", json=current)).status_code == 200


async def test_put_cannot_rename(client):
    await create(client)
    response = await client.put("/devices/web-01", json={**WEB, "name": "other"})
    assert response.status_code == 409  # a fine body, for another resource than this one
    assert (await client.get("/devices/web-01")).status_code == 200


async def test_invalid_put_changes_nothing(client):
    obj = await create(client)
    response = await client.put("/devices/web-01", json={**WEB, "port": 70000})
    assert response.status_code == 400
    assert (await client.get("/devices/web-01")).json() == obj


async def test_status_put_never_changes_spec_or_generation(client):
    obj = await create(client)
    response = await client.put(f"/devices/{obj['metadata']['uid']}/status",
                          json={"health": "ok", "errorCount": 3})
    assert response.status_code == 200
    body = response.json()
    assert body["status"] == {"health": "ok", "errorCount": 3}
    assert body["spec"] == obj["spec"] and body["metadata"]["generation"] == 1
    assert body["metadata"]["resourceVersion"] != obj["metadata"]["resourceVersion"]
    wrapped = await client.put("/devices/web-01/status", json={"status": {"health": "degraded"}})
    assert wrapped.json()["status"]["health"] == "degraded"


async def test_invalid_status_is_400(client):
    await create(client)
    response = await client.put("/devices/web-01/status", json={"errorCount": -1})
    assert response.status_code == 400
    assert response.json()["details"][0]["field"] == "status.errorCount"


async def test_delete(client):
    obj = await create(client)
    response = await client.delete("/devices/web-01")
    assert response.status_code == 200
    assert response.json() == {"message": "Device deleted successfully",
                               "uid": obj["metadata"]["uid"]}
    assert (await client.get("/devices/web-01")).status_code == 404
    assert (await client.delete("/devices/web-01")).status_code == 404
    await create(client)  # the name is free again


async def test_warn_mode_drops_unknown_fields_with_a_warning(tmp_path):
    async with make_client(tmp_path, mode="warn") as client:
        response = await client.post("/devices", json={**WEB, "bogus": 1})
        assert response.status_code == 201
        assert "spec.bogus" in response.headers["warning"]
        assert "bogus" not in response.json()["spec"]


async def test_health_openapi_and_docs(client):
    health = (await client.get("/health")).json()
    assert health["status"] == "healthy" and health["storage"] == "file"
    spec = (await client.get("/openapi.json")).json()
    assert spec["openapi"].startswith("3.1")
    assert {"/devices", "/devices/{id}", "/devices/{id}/status"} <= set(spec["paths"])
    port = spec["components"]["schemas"]["DeviceSpec"]["properties"]["port"]
    assert (port["minimum"], port["maximum"]) == (1, 65535)
    docs = await client.get("/docs")
    assert docs.status_code == 200 and "/docs/static/swagger-ui-bundle.js" in docs.text
    assert "http" not in docs.text.split("<body>")[1]  # no CDN
    asset = await client.get("/docs/static/swagger-ui-bundle.js")
    assert asset.status_code == 200 and len(asset.content) > 100_000


class Doc(Device, prefix="doc", plural="docs"):
    """A kind whose plural is the docs page's path."""


async def test_kind_routes_go_first_but_never_shadow_the_services_own(tmp_path):
    # The kinds' routes are tried before the service's own (resource requests are the bulk
    # of the traffic), except where a plural is one of the service's own paths.
    async with make_client(tmp_path, kinds=(Device, Doc)) as client:
        docs = await client.get("/docs")
        assert docs.status_code == 200 and "swagger-ui-bundle.js" in docs.text
        assert (await client.get("/docs/static/swagger-ui-bundle.js")).status_code == 200
        assert (await client.get("/health")).json()["status"] == "healthy"
        created = await client.post("/docs", json={"name": "d1", "type": "server",
                                                   "ipAddress": "10.0.0.1"})
        assert created.status_code == 201, created.text
        assert (await client.get("/docs/d1")).json()["metadata"]["name"] == "d1"
        assert (await client.get("/devices")).json() == []


async def test_unknown_route_and_method(client):
    assert (await client.get("/nothing")).status_code == 404
    assert (await client.post("/devices/web-01")).status_code == 405


@pytest.mark.parametrize(("method", "path", "allowed"), [
    ("PATCH", "/devices", {"GET", "HEAD", "POST"}),
    ("POST", "/devices/web-01", {"GET", "HEAD", "PUT", "PATCH", "DELETE"}),
    ("GET", "/devices/web-01/status", {"PUT", "PATCH"}),
])
async def test_method_not_allowed_lists_every_method_of_the_path(client, method, path, allowed):
    # Found by schemathesis: one route per method made 405 name only the first route's methods.
    response = await client.request(method, path)
    assert response.status_code == 405 and response.json()["code"] == 405
    assert set(response.headers["allow"].replace(" ", "").split(",")) == allowed


async def test_warn_mode_warning_header_survives_any_field_name(tmp_path):
    # Found by schemathesis: an unknown field named in a script latin-1 lacks made the
    # Warning header unencodable (500); quotes and newlines could break the header too.
    async with make_client(tmp_path, mode="warn") as client:
        body = {**WEB, "腾": 1, 'q"uote\r\nX-Injected: 1': 2}
        response = await client.post("/devices", json=body)
        assert response.status_code == 201
        warning = response.headers["warning"]
        assert "spec.\\u817e" in warning and "x-injected" not in response.headers
        patched = await client.patch("/devices/web-01/status", json={"ñ": 1})
        assert patched.status_code == 200 and "\\u00f1" in patched.headers["warning"]


async def test_http_metrics_count_each_request_by_route_and_status(client):
    # The labelled series are looked up once and kept: every request must still count.
    uid = (await create(client))["metadata"]["uid"]
    for _ in range(3):
        assert (await client.get(f"/devices/{uid}")).status_code == 200
    assert (await client.get("/devices/nope")).status_code == 404
    metrics = (await client.get("/metrics")).text
    assert 'fabrica_http_requests_total{code="200",kind="Device",verb="get"} 3.0' in metrics
    assert 'fabrica_http_requests_total{code="404",kind="Device",verb="get"} 1.0' in metrics
    assert 'fabrica_http_request_duration_seconds_count{kind="Device",verb="get"} 4.0' \
        in metrics


async def test_http_metric_label_sets_stay_bounded_under_random_paths(client):
    import random
    import re
    import string

    rng = random.Random(24)
    methods = ["GET", "POST", "PUT", "DELETE", "PATCH", "PROPFIND", "BREW"]
    for _ in range(1000):
        path = "/" + "/".join("".join(rng.choices(string.ascii_lowercase + string.digits,
                                                  k=rng.randint(1, 12)))
                              for _ in range(rng.randint(1, 4)))
        await client.request(rng.choice(methods), path)
    await client.get("/devices?watch=false")
    metrics = (await client.get("/metrics")).text
    series = set(re.findall(r'^fabrica_http_requests_total\{(.*)\} ', metrics, re.M))
    # Unknown paths are kind "" whatever the path; unknown methods are verb "other".
    assert all('kind=""' in s or 'kind="Device"' in s for s in series)
    verbs = {re.search(r'verb="(\w*)"', s).group(1) for s in series}  # type: ignore[union-attr]
    assert verbs <= {"get", "post", "put", "delete", "patch", "other", "list"}
    assert len(series) <= 20, series
    durations = re.findall(r'^fabrica_http_request_duration_seconds_count\{', metrics, re.M)
    assert len(durations) <= 10
    assert "fabrica_http_requests_in_flight 1.0" in metrics  # the /metrics read itself
