"""Spec history for kinds declared with versioning=True."""

import httpx
import pytest
from pydantic import Field

from fabrica import Model, Resource, ServiceSettings
from fabrica.server import create_app
from fabrica.storage import FileStorage, SQLStorage
from tests._support.app import serve_in_process
from tests._support.sqldb import database, migrate


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


@pytest.fixture(params=["file", "sqlite", "postgresql", "mariadb"])
def storage_url(request, tmp_path):
    if request.param == "file":
        yield None
        return
    with database(request.param, tmp_path) as url:
        migrate(url)
        yield url


@pytest.fixture
async def any_backend(storage_url, tmp_path):
    storage = FileStorage(tmp_path) if storage_url is None else SQLStorage(storage_url)
    app = create_app([Policy], storage, settings=ServiceSettings(project="p", package="p"))
    async with serve_in_process(app) as c:
        yield c


@pytest.mark.parametrize("bad", ["%00", "v1%00", "%00v1", "%ED%A0%80", "v%C2%B2", "v" + "9" * 30,
                                 "v1%0A", "%25", "v-1"])
async def test_a_version_id_no_backend_wrote_is_404_on_every_backend(any_backend, bad):
    """PostgreSQL refused a NUL in the query itself (500); a surrogate or a digit of another
    script must not reach any database either."""
    created = (await any_backend.post("/policies", json={"name": "p1", "rules": ["a"]})).json()
    for method in ("GET", "DELETE"):
        answer = await any_backend.request(method, f"/policies/p1/versions/{bad}")
        assert answer.status_code == 404, (method, bad, answer.status_code, answer.text)
        assert answer.json()["code"] == 404
    versions = (await any_backend.get("/policies/p1/versions")).json()
    assert [v["versionId"] for v in versions] == ["v1"]
    assert (await any_backend.get("/policies/p1")).json() == created
