"""Spec history for kinds declared with versioning=True."""

import httpx
import pytest
from pydantic import Field

from fabrica import Model, Resource, ServiceSettings
from fabrica.server import create_app
from fabrica.storage import FileStorage


class PolicySpec(Model):
    rules: list[str] = []
    priority: int = Field(0, ge=0)


class PolicyStatus(Model):
    phase: str = ""
    version: str = ""


class Policy(Resource[PolicySpec, PolicyStatus], prefix="pol", versioning=True):
    pass


class PlainSpec(Model):
    x: int = 0


class PlainStatus(Model):
    phase: str = ""


class Plain(Resource[PlainSpec, PlainStatus]):
    pass


@pytest.fixture
async def client(tmp_path):
    app = create_app([Policy, Plain], FileStorage(tmp_path),
                     settings=ServiceSettings(project="p", package="p"))
    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="http://t") as c:
        yield c


async def test_spec_history_scenario(client, tmp_path):
    created = (await client.post("/policies", json={"name": "p1", "rules": ["a"]})).json()
    assert created["status"]["version"] == "v1"
    put = (await client.put("/policies/p1", json={"rules": ["a", "b"]})).json()
    assert put["status"]["version"] == "v2"
    patched = (await client.patch("/policies/p1", json={"priority": 5})).json()
    assert patched["status"]["version"] == "v3"
    status = (await client.put("/policies/p1/status", json={"phase": "Ready",
                                                            "version": "v99"})).json()
    assert status["status"] == {"phase": "Ready", "version": "v3"}
    same = (await client.put("/policies/p1", json={"rules": ["a", "b"], "priority": 5,
                                                   "labels": {"x": "y"}})).json()
    assert same["status"]["version"] == "v3"

    versions = (await client.get("/policies/p1/versions")).json()
    assert [v["versionId"] for v in versions] == ["v1", "v2", "v3"]
    assert versions[0]["spec"] == {"rules": ["a"], "priority": 0}
    assert versions[2]["spec"] == {"rules": ["a", "b"], "priority": 5}
    assert set(versions[0]) == {"versionId", "createdAt", "uid", "name", "labels",
                                "annotations", "spec", "schemaVersion"}
    one = await client.get("/policies/p1/versions/v2")
    assert one.status_code == 200 and one.json()["spec"]["rules"] == ["a", "b"]

    gone = await client.delete("/policies/p1/versions/v1")
    assert gone.status_code == 200
    assert (await client.get("/policies/p1/versions/v1")).status_code == 404
    assert (await client.get("/policies/p1/versions/../../x")).status_code == 404

    uid = created["metadata"]["uid"]
    assert (tmp_path / "policies" / ".versions" / uid).is_dir()
    await client.delete("/policies/p1")
    assert not (tmp_path / "policies" / ".versions" / uid).exists()
    assert (await client.get("/policies/p1/versions")).status_code == 404


async def test_unversioned_kinds_have_no_version_routes(client):
    await client.post("/plains", json={"name": "a"})
    assert (await client.get("/plains/a/versions")).status_code == 404
    spec = (await client.get("/openapi.json")).json()
    assert "/policies/{id}/versions" in spec["paths"]
    assert "/plains/{id}/versions" not in spec["paths"]


def test_versioned_kind_needs_status_version():
    with pytest.raises(TypeError, match="status.version"):
        class Bad(Resource[PlainSpec, PlainStatus], versioning=True):
            pass


BAD_IDS = ["pol-" + "0" * 65, "POL-0000000A", "a" * 254, "a_b", "pol-0000000a.json", "v1.",
           "-x", "x" * 64 + "." + "y"]


@pytest.mark.parametrize("bad", BAD_IDS)
async def test_a_malformed_id_is_a_4xx_on_every_route(client, bad):
    """Every route with an id in its path, on the file backend: never a 500."""
    created = (await client.post("/policies", json={"name": "p1", "rules": ["a"]})).json()
    version = "v1"
    for method, path, body in [
        ("GET", f"/policies/{bad}", None), ("PUT", f"/policies/{bad}", {"rules": []}),
        ("PATCH", f"/policies/{bad}", {"priority": 1}), ("DELETE", f"/policies/{bad}", None),
        ("PUT", f"/policies/{bad}/status", {"phase": "x"}),
        ("PATCH", f"/policies/{bad}/status", {"phase": "x"}),
        ("GET", f"/policies/{bad}/versions", None),
        ("GET", f"/policies/{bad}/versions/{version}", None),
        ("DELETE", f"/policies/{bad}/versions/{version}", None),
        ("GET", f"/policies/p1/versions/{bad}", None),
        ("DELETE", f"/policies/p1/versions/{bad}", None),
    ]:
        answer = await client.request(method, path, json=body)
        assert 400 <= answer.status_code < 500, (method, path, answer.status_code, answer.text)
    assert (await client.get("/policies/p1")).json() == created  # and nothing changed
