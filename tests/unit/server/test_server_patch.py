"""The PATCH matrix: each patch type × spec/status × success/422/415/400."""

import pytest

MERGE, JSON_PATCH, SHORTHAND = ("application/merge-patch+json", "application/json-patch+json",
                                "application/shorthand-patch+json")
WEB = {"name": "web-01", "type": "server", "ipAddress": "10.0.0.1", "tags": {"a": "1"}}


@pytest.fixture
async def device(client):
    response = await client.post("/devices", json=WEB)
    assert response.status_code == 201
    return response.json()


async def patch(client, path, body, content_type):
    import json
    headers = {"content-type": content_type} if content_type else {}
    return await client.patch(path, content=json.dumps(body), headers=headers)


SPEC_CASES = [
    (MERGE, {"port": 8443, "tags": {"a": None, "b": "2"}}, {"port": 8443, "tags": {"b": "2"}}),
    ("application/json", {"port": 8443}, {"port": 8443}),
    (None, {"ipAddress": "10.0.0.9"}, {"ipAddress": "10.0.0.9"}),
    (JSON_PATCH, [{"op": "replace", "path": "/port", "value": 22},
                  {"op": "add", "path": "/tags/b", "value": "2"},
                  {"op": "remove", "path": "/tags/a"},
                  {"op": "test", "path": "/type", "value": "server"},
                  {"op": "copy", "from": "/ipAddress", "path": "/tags/ip"},
                  {"op": "move", "from": "/tags/ip", "path": "/tags/addr"}],
     {"port": 22, "tags": {"b": "2", "addr": "10.0.0.1"}}),
    (SHORTHAND, {"port": 2222, "tags.b": "2", "tags.a": None, "/tags/x.y~1z": "dots"},
     {"port": 2222, "tags": {"b": "2", "x.y/z": "dots"}}),
]


@pytest.mark.parametrize("content_type, body, expected", SPEC_CASES)
async def test_spec_patch_succeeds(client, device, content_type, body, expected):
    response = await patch(client, "/devices/web-01", body, content_type)
    assert response.status_code == 200, response.text
    result = response.json()
    for key, value in expected.items():
        assert result["spec"][key] == value
    assert result["metadata"]["generation"] == 2
    assert result["status"] == device["status"]


@pytest.mark.parametrize("content_type, body", [
    (MERGE, {"health": "ok", "errorCount": 2}),
    (JSON_PATCH, [{"op": "replace", "path": "/health", "value": "ok"},
                  {"op": "replace", "path": "/errorCount", "value": 2}]),
    (SHORTHAND, {"health": "ok", "errorCount": 2}),
])
async def test_status_patch_succeeds_and_leaves_spec(client, device, content_type, body):
    response = await patch(client, "/devices/web-01/status", body, content_type)
    assert response.status_code == 200, response.text
    result = response.json()
    assert result["status"] == {"health": "ok", "errorCount": 2}
    assert result["spec"] == device["spec"]
    assert result["metadata"]["generation"] == 1


CANNOT_APPLY = [
    (JSON_PATCH, [{"op": "test", "path": "/port", "value": 1}]),
    (JSON_PATCH, [{"op": "remove", "path": "/nothing"}]),
    (JSON_PATCH, [{"op": "replace", "path": "/tags/missing/deep", "value": 1}]),
    (SHORTHAND, {"type.sub": 1}),
]


@pytest.mark.parametrize("target", ["/devices/web-01", "/devices/web-01/status"])
@pytest.mark.parametrize("content_type, body", CANNOT_APPLY)
async def test_patch_that_cannot_apply_is_422(client, device, target, content_type, body):
    if target.endswith("status") and content_type == SHORTHAND:
        body = {"health.sub": 1}
    response = await patch(client, target, body, content_type)
    assert response.status_code == 422, response.text
    assert (await client.get("/devices/web-01")).json() == device


@pytest.mark.parametrize("target", ["/devices/web-01", "/devices/web-01/status"])
@pytest.mark.parametrize("content_type", ["text/plain", "application/xml",
                                          "application/strategic-merge-patch+json"])
async def test_unsupported_patch_type_is_415(client, device, target, content_type):
    response = await patch(client, target, {"port": 1}, content_type)
    assert response.status_code == 415
    assert (await client.get("/devices/web-01")).json() == device


@pytest.mark.parametrize("target, body, field", [
    ("/devices/web-01", {"port": 0}, "spec.port"),
    ("/devices/web-01", {"type": "toaster"}, "spec.type"),
    ("/devices/web-01", {"ipAddress": None}, "spec.ipAddress"),
    ("/devices/web-01", {"unknown": 1}, "spec.unknown"),
    ("/devices/web-01/status", {"errorCount": -5}, "status.errorCount"),
])
@pytest.mark.parametrize("content_type", [MERGE, SHORTHAND])
async def test_patch_with_invalid_result_is_400(client, device, target, body, field,
                                                content_type):
    response = await patch(client, target, body, content_type)
    assert response.status_code == 400, response.text
    assert field in {d["field"] for d in response.json()["details"]}
    assert (await client.get("/devices/web-01")).json() == device


@pytest.mark.parametrize("content_type, body", [
    (JSON_PATCH, {"op": "replace"}),
    (JSON_PATCH, [{"op": "explode", "path": "/port"}]),
    (JSON_PATCH, [{"path": "/port"}]),
    (SHORTHAND, [1, 2]),
    (SHORTHAND, {"": 1}),
    (SHORTHAND, {"a..b": 1}),
    (MERGE, [1, 2]),
])
async def test_malformed_patch_is_400(client, device, content_type, body):
    response = await patch(client, "/devices/web-01", body, content_type)
    assert response.status_code == 400, response.text
    assert (await client.get("/devices/web-01")).json() == device


async def test_patch_unknown_resource_is_404(client):
    response = await patch(client, "/devices/nope", {"port": 1}, MERGE)
    assert response.status_code == 404


async def test_patch_bad_json_is_400(client, device):
    response = await client.patch("/devices/web-01", content=b"{",
                                  headers={"content-type": MERGE})
    assert response.status_code == 400


async def test_shorthand_order_is_deterministic(client, device):
    first = await patch(client, "/devices/web-01", {"tags.z.q": None, "tags": None,
                                                    "tags.k": "v"}, SHORTHAND)
    assert first.status_code == 200
    assert first.json()["spec"]["tags"] == {"k": "v"}
