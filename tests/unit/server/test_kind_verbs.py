"""verbs=, exposure= and max_body_size= (SPEC section 10) through HTTP, OpenAPI, the client
library and the client command line."""

from __future__ import annotations

import logging
from pathlib import Path

import httpx
import pytest
from click.testing import CliRunner

from fabrica import Model, Resource, ServiceSettings
from fabrica.client import Client, MethodNotAllowed, client_cli
from fabrica.server import build_openapi, create_app
from fabrica.storage import FileStorage
from fabrica.store import SYSTEM_CONTROLLER, acting_as
from tests._support.app import Device, serve_in_process
from tests._support.tokens import hs_token
from tests.unit.server.test_auth import make_auth


class ItemSpec(Model):
    size: int = 0


class ItemStatus(Model):
    phase: str = ""


class Catalog(Resource[ItemSpec, ItemStatus], prefix="cat",
              verbs=("list", "get", "create"), exposure="public"):
    """Read and add, nothing else; open to anyone."""


class Secret(Resource[ItemSpec, ItemStatus], prefix="sec", exposure="internal"):
    """Only reconcilers and hooks see it."""


class Watched(Resource[ItemSpec, ItemStatus], prefix="wat", verbs=("watch", "get"),
              max_body_size=64):
    """Watch only (no plain list); tiny bodies."""


KINDS = [Device, Catalog, Secret, Watched]
SETTINGS = ServiceSettings(project="rules-api", package="rules_api")


def app_for(tmp_path: Path, **options):  # type: ignore[no-untyped-def]
    return create_app(KINDS, FileStorage(tmp_path / "data"), settings=SETTINGS, **options)


@pytest.fixture
async def client(tmp_path: Path):  # type: ignore[no-untyped-def]
    async with serve_in_process(app_for(tmp_path)) as client:
        yield client


async def test_a_verb_left_out_answers_405_with_allow(client: httpx.AsyncClient) -> None:
    assert (await client.post("/catalogs", json={"name": "a", "size": 1})).status_code == 201
    refused = await client.delete("/catalogs/a")
    assert refused.status_code == 405
    assert refused.headers["allow"] == "GET, HEAD"
    body = refused.json()
    assert body["code"] == 405 and "Catalog does not offer delete" in body["error"]
    for method, path in [("PUT", "/catalogs/a"), ("PATCH", "/catalogs/a"),
                         ("PUT", "/catalogs/a/status"), ("PATCH", "/catalogs/a/status")]:
        response = await client.request(method, path, json={})
        assert response.status_code == 405, (method, path)
    status = await client.put("/catalogs/a/status", json={})
    assert status.headers["allow"] == ""  # no method of that path is offered
    assert (await client.get("/catalogs/a")).json()["spec"] == {"size": 1}
    assert (await client.request("POST", "/catalogs/a")).status_code == 405  # never a verb


async def test_list_and_watch_are_separate_verbs(client: httpx.AsyncClient) -> None:
    assert (await client.get("/catalogs?watch=true")).status_code == 405
    listed = await client.get("/watcheds")
    assert listed.status_code == 405 and "does not offer list" in listed.json()["error"]
    assert listed.headers["allow"] == "GET, HEAD"
    async with client.stream("GET", "/watcheds?watch=true&timeoutSeconds=1") as stream:
        assert stream.status_code == 200


async def test_an_internal_kind_has_no_routes_but_the_store_has_it(
        client: httpx.AsyncClient, tmp_path: Path) -> None:
    assert (await client.get("/secrets")).status_code == 404
    assert (await client.post("/secrets", json={"name": "a"})).status_code == 404
    transport = client._transport  # the same app: its service's store serves reconcilers
    service = transport.app.state.service  # type: ignore[attr-defined]
    with acting_as(SYSTEM_CONTROLLER):
        made = await service.store.create(Secret, "s1", ItemSpec(size=3))
    assert (await service.store.get(Secret, "s1")).uid == made.uid


async def test_max_body_size_413(tmp_path: Path) -> None:
    class Small(Resource[ItemSpec, ItemStatus], prefix="sml", max_body_size="64B"):
        pass

    app = create_app([Small, Device], FileStorage(tmp_path / "data"), settings=SETTINGS)
    async with serve_in_process(app) as client:
        fits = await client.post("/smalls", json={"name": "a", "size": 1})
        assert fits.status_code == 201
        big = await client.post("/smalls", json={"name": "b", "annotations": {"x": "y" * 100}})
        assert big.status_code == 413 and "64 bytes" in big.json()["error"]
        assert (await client.get("/smalls/b")).status_code == 404  # nothing stored
        patch = await client.patch("/smalls/a", json={"size": 10 ** 80},
                                   headers={"content-type": "application/merge-patch+json"})
        assert patch.status_code == 413
        device = {"name": "d", "type": "server", "ipAddress": "10.0.0.1",
                  "annotations": {"x": "y" * 100}}
        assert (await client.post("/devices", json=device)).status_code == 201


def test_openapi_documents_only_what_is_offered() -> None:
    document = build_openapi(KINDS, title="rules")
    paths = document["paths"]
    assert set(paths["/catalogs"]) == {"get", "post"}
    assert set(paths["/catalogs/{id}"]) == {"parameters", "get"}
    assert "/catalogs/{id}/status" not in paths
    assert not any(path.startswith("/secrets") for path in paths)
    assert "Secret" not in document["components"]["schemas"]
    assert "Secret" not in {tag["name"] for tag in document["tags"]}
    listing = paths["/catalogs"]["get"]
    assert "watch" not in {p["name"] for p in listing["parameters"]}
    assert list(listing["responses"]["200"]["content"]) == ["application/json"]
    assert "405" in listing["responses"]
    watching = paths["/watcheds"]["get"]
    assert list(watching["responses"]["200"]["content"]) == ["application/x-ndjson"]
    assert set(paths["/devices/{id}"]) == {"parameters", "get", "put", "patch", "delete"}


async def test_public_kinds_need_no_token_and_are_logged(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.WARNING, "fabrica.server")
    app = app_for(tmp_path, auth=make_auth(tmp_path))
    assert "public kinds" in caplog.text and "catalogs" in caplog.text
    async with serve_in_process(app) as client:
        assert (await client.post("/catalogs", json={"name": "a"})).status_code == 201
        assert (await client.get("/catalogs")).status_code == 200
        assert (await client.get("/devices")).status_code == 401
        assert (await client.get("/watcheds/x")).status_code == 401
        bad = await client.get("/catalogs", headers={"Authorization": "Bearer nonsense"})
        assert bad.status_code == 401  # a token sent is checked, public or not
        token = hs_token("viewer-bob", roles=["viewer"])
        created = await client.post("/catalogs", json={"name": "b"},
                                    headers={"Authorization": f"Bearer {token}"})
        assert created.status_code == 201  # the policy does not apply to public kinds
        document = (await client.get("/openapi.json")).json()
    assert document["paths"]["/catalogs"]["post"]["security"] == []
    assert "security" not in document["paths"]["/devices"]["get"]


def test_the_client_refuses_verbs_not_offered_without_a_request() -> None:
    sent: list[httpx.Request] = []

    def answer(request: httpx.Request) -> httpx.Response:
        sent.append(request)
        return httpx.Response(500)

    with Client("http://api.test", KINDS, transport=httpx.MockTransport(answer),
                retries=0) as client:
        with pytest.raises(MethodNotAllowed, match="Catalog does not offer delete"):
            client.delete(Catalog, "a")
        with pytest.raises(MethodNotAllowed, match="does not offer update"):
            client.raw.replace(Catalog, "a", {})
        with pytest.raises(MethodNotAllowed, match="does not offer list"):
            client.list(Watched)
        with pytest.raises(ValueError, match="internal"):
            client.get(Secret, "a")
    assert sent == []


def test_the_client_cli_shows_only_offered_verbs_and_served_kinds() -> None:
    cli = client_cli(KINDS, SETTINGS)
    runner = CliRunner()
    top = runner.invoke(cli, ["--help"])
    assert "catalog" in top.output and "secret" not in top.output
    catalog = runner.invoke(cli, ["catalog", "--help"]).output
    assert all(verb in catalog for verb in ("list", "get", "create"))
    assert not any(verb in catalog for verb in ("delete", "update", "patch", "status"))
    assert runner.invoke(cli, ["catalog", "delete", "a"]).exit_code == 2  # no such command
    assert runner.invoke(cli, ["secret", "list"]).exit_code == 2
