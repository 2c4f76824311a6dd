"""The client package against a real fabrica server, in-process.

The sync client and the CLI talk HTTP to uvicorn serving `create_app` on a free local port in
a background thread; the async client talks to the same app through ``httpx.ASGITransport``.
Exact request shapes (headers, content types, paging links) and the status codes a healthy
server never sends are checked on ``httpx.MockTransport``.
"""

from __future__ import annotations

import asyncio
import json
import socket
import threading
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
import uvicorn
import yaml
from click.testing import CliRunner

import fabrica.client
from fabrica import Model, Resource, ServiceSettings
from fabrica.client import (
    AsyncClient,
    BadRequest,
    Client,
    Conflict,
    ConnectionFailed,
    FabricaError,
    MethodNotAllowed,
    NotFound,
    PayloadTooLarge,
    PreconditionFailed,
    ServerError,
    Unprocessable,
    UnsupportedMediaType,
    ValidationError,
    client_cli,
)
from fabrica.server import create_app
from fabrica.storage import FileStorage
from tests._support.app import Device, DeviceSpec, DeviceStatus  # noqa: F401  (the example's Device)
from tests._support.thread_server import ThreadServer

SETTINGS = ServiceSettings(project="device-api", package="device_api")


class ConfigSpec(Model):
    value: str = ""


class ConfigStatus(Model):
    version: str = ""


class Config(Resource[ConfigSpec, ConfigStatus], prefix="cfg", versioning=True):
    """A versioned kind: every spec change keeps a snapshot."""


KINDS = [Device, Config]
WEB = DeviceSpec(type="server", ip_address="10.0.0.1")


# ---- fixtures --------------------------------------------------------------------------------

def serve(tmp_path: Any, **kwargs: Any) -> ThreadServer:
    app = create_app(KINDS, FileStorage(tmp_path / "data"), settings=SETTINGS, **kwargs)
    return ThreadServer(app)


@pytest.fixture
def server(tmp_path: Any) -> Iterator[str]:
    with serve(tmp_path) as url:
        yield url


@pytest.fixture
def client(server: str) -> Iterator[Client]:
    with Client(server, kinds=KINDS, retries=0) as c:
        yield c


def dead_url() -> str:
    """A local port with nothing listening: bound once, then released."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    return f"http://127.0.0.1:{port}"


# ---- public face -----------------------------------------------------------------------------

def test_public_names() -> None:
    assert sorted(fabrica.client.__all__) == sorted([
        "DEFAULT_SERVER", "DEFAULT_TIMEOUT", "PATCH_TYPES", "AsyncClient", "AsyncRawClient",
        "BadRequest", "Client", "Conflict", "ConnectionFailed", "FabricaError", "Forbidden",
        "MethodNotAllowed", "NotFound", "PayloadTooLarge", "PreconditionFailed", "RawClient",
        "ServerError",
        "TooLargeResourceVersion",
        "Unauthorized", "Unprocessable",
        "UnsupportedMediaType", "ValidationError", "client_cli", "main",
        "AsyncInformer", "Expired", "Informer", "RESOURCE_VERSION_HEADER", "WatchEvent",
    ])
    for name in fabrica.client.__all__:
        assert getattr(fabrica.client, name) is not None


# ---- sync client against the real server -----------------------------------------------------

def test_create_get_list(client: Client) -> None:
    web = client.create(Device, name="web-01", spec=WEB, labels={"rack": "r1"},
                        annotations={"note": "x"})
    assert isinstance(web, Device) and isinstance(web.spec, DeviceSpec)
    assert web.uid.startswith("dev-") and web.metadata.generation == 1
    assert web.metadata.labels == {"rack": "r1"} and web.metadata.annotations == {"note": "x"}
    assert web.spec.ip_address == "10.0.0.1" and web.status.health == "unknown"
    sw = client.create("device", name="sw-01", spec={"type": "switch", "ipAddress": "10.0.0.2"})
    assert isinstance(sw, Device) and sw.spec.type == "switch"

    assert client.get(Device, web.uid) == web
    assert client.get("device", "web-01") == web
    assert [d.name for d in client.list(Device)] == ["sw-01", "web-01"]
    assert [d.name for d in client.iter_list("devices")] == ["sw-01", "web-01"]


def test_update_replaces_spec_and_refuses_stale_versions(client: Client) -> None:
    web = client.create(Device, name="web-01", spec=WEB)
    stale = web.model_copy(deep=True)
    web.spec.port = 8443
    web.metadata.labels = {"env": "prod"}
    updated = client.update(web)
    assert updated.spec.port == 8443 and updated.metadata.labels == {"env": "prod"}
    assert updated.metadata.generation == 2
    assert updated.metadata.resource_version != web.metadata.resource_version

    stale.spec.port = 1
    with pytest.raises(Conflict) as caught:
        client.update(stale)
    assert caught.value.status == 409 and "resourceVersion" in caught.value.message
    assert client.get(Device, "web-01").spec.port == 8443


def test_update_with_retry_reapplies_after_a_conflict(client: Client, server: str) -> None:
    client.create(Device, name="web-01", spec=WEB)
    calls = []

    def add_tag(dev: Device) -> None:
        calls.append(dev.metadata.resource_version)
        if len(calls) == 1:  # another writer slips in between our read and our write
            with Client(server, kinds=[Device]) as other:
                other.update_with_retry(Device, "web-01", lambda d: d.spec.tags.update(b="2"))
        dev.spec.tags["a"] = "1"

    result = client.update_with_retry(Device, "web-01", add_tag)
    assert len(calls) == 2 and calls[0] != calls[1]
    assert result.spec.tags == {"a": "1", "b": "2"}


def test_update_with_retry_gives_up(client: Client, server: str) -> None:
    client.create(Device, name="web-01", spec=WEB)

    def always_raced(dev: Device) -> Device:
        client.update(client.get(Device, "web-01"))  # bumps the version every time
        return dev

    with pytest.raises(Conflict):
        client.update_with_retry(Device, "web-01", always_raced, attempts=2)


def test_update_status_forms(client: Client) -> None:
    web = client.create(Device, name="web-01", spec=WEB)
    web.status.health = "ok"
    after = client.update_status(web)
    assert after.status.health == "ok" and after.spec == web.spec
    assert after.metadata.generation == 1

    after = client.update_status(Device, "web-01", {"health": "degraded", "errorCount": 2})
    assert (after.status.health, after.status.error_count) == ("degraded", 2)
    after = client.update_status(("device", web.uid), DeviceStatus(health="down"))
    assert after.status == DeviceStatus(health="down")
    assert client.update_status(after, {"health": "up"}).status.health == "up"
    with pytest.raises(TypeError):
        client.update_status(Device, "web-01")


def test_delete(client: Client) -> None:
    web = client.create(Device, name="web-01", spec=WEB)
    assert client.delete(Device, "web-01") == {
        "message": "Device deleted successfully", "uid": web.uid}
    with pytest.raises(NotFound) as caught:
        client.get(Device, web.uid)
    assert caught.value.status == 404 and web.uid in caught.value.message
    assert client.list(Device) == []


def test_server_errors_are_typed(tmp_path: Any) -> None:
    with serve(tmp_path, max_body_size=300) as url, Client(url, [Device]) as client:
        client.create(Device, name="web-01", spec=WEB)
        with pytest.raises(Conflict, match="already exists") as dup:
            client.create(Device, name="web-01", spec=WEB)
        assert dup.value.status == 409

        with pytest.raises(ValidationError) as invalid:
            client.create(Device, name="bad", spec={"type": "toaster", "ipAddress": "x",
                                                    "port": 0})
        assert isinstance(invalid.value, BadRequest) and invalid.value.status == 400
        assert {d["field"] for d in invalid.value.details} == {"spec.type", "spec.port"}

        with pytest.raises(NotFound):
            client.delete(Device, "nope")
        with pytest.raises(NotFound):
            client.update_status(Device, "nope", DeviceStatus())

        big = WEB.model_copy(update={"tags": {f"k{i}": "v" * 20 for i in range(20)}})
        with pytest.raises(PayloadTooLarge) as too_large:
            client.create(Device, name="big", spec=big)
        assert too_large.value.status == 413 and "300" in too_large.value.message


def test_unknown_kind_name(client: Client) -> None:
    with pytest.raises(ValueError, match="device"):
        client.get("toaster", "x")


def test_patch(client: Client) -> None:
    web = client.create(Device, name="web-01", spec=WEB)
    merged = client.patch(Device, "web-01", {"port": 8443, "tags": {"a": "1"}})
    assert (merged.spec.port, merged.spec.tags) == (8443, {"a": "1"})
    assert merged.metadata.generation == 2
    shorthand = client.patch("device", web.uid, {"tags.b": "2", "tags.a": None}, "shorthand")
    assert shorthand.spec.tags == {"b": "2"}
    replaced = client.patch(Device, "web-01", [{"op": "replace", "path": "/port", "value": 1}],
                            patch_type="json")
    assert replaced.spec.port == 1

    status = client.patch_status(replaced, {"health": "ok"})
    assert status.status.health == "ok" and status.spec == replaced.spec
    status = client.patch_status(Device, "web-01", {"errorCount": 3}, patch_type="shorthand")
    assert (status.status.health, status.status.error_count) == ("ok", 3)


def test_patch_errors(client: Client) -> None:
    client.create(Device, name="web-01", spec=WEB)
    with pytest.raises(Unprocessable) as failed_test:
        client.patch(Device, "web-01", [{"op": "test", "path": "/port", "value": 1}], "json")
    assert failed_test.value.status == 422
    with pytest.raises(BadRequest) as not_a_list:
        client.patch(Device, "web-01", {"op": "add"}, "json")
    assert type(not_a_list.value) is BadRequest and not_a_list.value.details == []
    with pytest.raises(ValidationError) as invalid:
        client.patch(Device, "web-01", {"port": 0})
    assert [d["field"] for d in invalid.value.details] == ["spec.port"]


def test_if_match(client: Client) -> None:
    web = client.create(Device, name="web-01", spec=WEB)
    version = web.metadata.resource_version
    current = client.patch(Device, "web-01", {"port": 2}, if_match=version)
    for stale_write in (lambda: client.patch(Device, "web-01", {"port": 3}, if_match=version),
                        lambda: client.update(current.model_copy(), if_match=version),
                        lambda: client.update_status(current, if_match=version),
                        lambda: client.patch_status(current, {"health": "x"}, if_match=version),
                        lambda: client.delete(Device, "web-01", if_match=version)):
        with pytest.raises(PreconditionFailed) as caught:
            stale_write()
        assert caught.value.status == 412
    assert client.get(Device, "web-01") == current
    client.delete(Device, "web-01", if_match=current.metadata.resource_version)
    assert client.list(Device) == []


def test_paging_and_selectors(client: Client) -> None:
    for i in range(5):
        client.create(Device, name=f"d{i}", spec=WEB, labels={"even": str(i % 2 == 0).lower()})
    pages = list(client.raw.iter_pages(Device, limit=2))
    assert [len(page) for page in pages] == [2, 2, 1]
    assert [d.name for d in client.list(Device, limit=2)] == [f"d{i}" for i in range(5)]
    assert [d.name for d in client.iter_list(Device, "even=true", 1)] == ["d0", "d2", "d4"]
    assert [d.name for d in client.list(Device, selector="even in (false)")] == ["d1", "d3"]
    with pytest.raises(ValidationError) as invalid:
        client.list(Device, selector="in in in")
    assert invalid.value.details[0]["field"] == "labelSelector"


def test_versions(client: Client) -> None:
    cfg = client.create(Config, name="c1", spec=ConfigSpec(value="a"))
    client.patch(Config, "c1", {"value": "b"})
    client.update_status(Config, "c1", {"version": "ignored"})  # status writes keep the version
    history = client.versions(Config, cfg.uid)
    assert [(v["versionId"], v["spec"]) for v in history] == [("v1", {"value": "a"}),
                                                              ("v2", {"value": "b"})]
    assert client.get_version("config", "c1", "v1")["spec"] == {"value": "a"}
    assert client.delete_version(Config, "c1", "v1")["versionId"] == "v1"
    assert [v["versionId"] for v in client.versions(Config, "c1")] == ["v2"]
    with pytest.raises(NotFound):
        client.get_version(Config, "c1", "v1")


# ---- the wire format, checked on a mock transport --------------------------------------------

class Recorder:
    """A MockTransport handler that records requests and answers from a script."""

    def __init__(self, *answers: httpx.Response) -> None:
        self.requests: list[httpx.Request] = []
        self.answers = list(answers)

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        return self.answers.pop(0) if self.answers else httpx.Response(200, json=DOC)

    def client(self, **kwargs: Any) -> Client:
        return Client("http://api.test", [Device], transport=httpx.MockTransport(self), **kwargs)


DOC = Device(metadata={"name": "web-01", "uid": "dev-0123abcd", "resourceVersion": "7"},
             spec=WEB, status=DeviceStatus()).model_dump(mode="json")


@pytest.mark.parametrize("patch_type, body, content_type", [
    ("merge", {"port": 1}, "application/merge-patch+json"),
    ("json", [{"op": "remove", "path": "/tags"}], "application/json-patch+json"),
    ("shorthand", {"tags.a": "b", "port": None}, "application/shorthand-patch+json"),
])
def test_patch_requests(patch_type: str, body: Any, content_type: str) -> None:
    recorder = Recorder()
    with recorder.client() as client:
        obj = client.patch(Device, "web-01", body, patch_type, if_match="7")
        client.patch_status(Device, "web-01", body, patch_type=patch_type)
    assert isinstance(obj, Device)
    spec_req, status_req = recorder.requests
    assert (spec_req.method, spec_req.url.path) == ("PATCH", "/devices/web-01")
    assert spec_req.headers["content-type"] == content_type
    assert spec_req.headers["if-match"] == '"7"' and json.loads(spec_req.content) == body
    assert (status_req.url.path, status_req.headers["content-type"]) == (
        "/devices/web-01/status", content_type)
    assert "if-match" not in status_req.headers


def test_patch_type_is_checked() -> None:
    with Recorder().client() as client, pytest.raises(ValueError, match="merge"):
        client.patch(Device, "web-01", {}, "strategic")


def test_preconditions_and_bodies_on_the_wire() -> None:
    recorder = Recorder(httpx.Response(200, json=DOC), httpx.Response(200, json=DOC),
                        httpx.Response(200, json={"message": "gone", "uid": "dev-0123abcd"}),
                        httpx.Response(200, json=[{"version": "1"}]))
    obj = Device.model_validate(DOC)
    with recorder.client() as client:
        client.update(obj, if_match='W/"7"')
        client.update_status(obj, if_match="*")
        client.delete(Device, "web 01", if_match="7")
        assert client.versions(Device, "web-01") == [{"version": "1"}]
    put, status, delete, versions = recorder.requests
    assert (put.method, put.url.path, put.headers["if-match"]) == ("PUT", "/devices/dev-0123abcd",
                                                                   'W/"7"')
    assert json.loads(put.content) == {
        "apiVersion": "v1", "schemaVersion": "v1", "kind": "Device",
        "metadata": {"name": "web-01", "labels": {}, "annotations": {}, "resourceVersion": "7"},
        "spec": {"type": "server", "ipAddress": "10.0.0.1", "port": 443, "tags": {}}}
    assert status.headers["if-match"] == "*"
    assert json.loads(status.content) == {"health": "unknown", "errorCount": 0}
    assert (delete.method, delete.url.raw_path, delete.headers["if-match"]) == (
        "DELETE", b"/devices/web%2001", '"7"')
    assert versions.url.path == "/devices/web-01/versions"


def test_list_follows_next_links() -> None:
    page = {"Link": '</devices?limit=1&continue=abc>; rel="next"'}
    recorder = Recorder(httpx.Response(200, json=[DOC], headers=page),
                        httpx.Response(200, json={"items": [DOC, DOC]}))
    with recorder.client() as client:
        items = client.list(Device, selector="env=prod,tier!=db", limit=1)
    assert [type(i) for i in items] == [Device] * 3
    first, second = recorder.requests
    assert dict(first.url.params) == {"labelSelector": "env=prod,tier!=db", "limit": "1"}
    assert str(second.url) == "http://api.test/devices?limit=1&continue=abc"


@pytest.mark.parametrize("status, error", [
    (400, BadRequest), (404, NotFound), (409, Conflict), (412, PreconditionFailed),
    (413, PayloadTooLarge), (415, UnsupportedMediaType), (422, Unprocessable),
    (500, ServerError), (503, ServerError), (405, MethodNotAllowed), (418, FabricaError),
])
def test_status_codes_map_to_errors(status: int, error: type[FabricaError]) -> None:
    recorder = Recorder(httpx.Response(status, json={"error": "said the server", "code": status}))
    with recorder.client() as client, pytest.raises(error) as caught:
        client.get(Device, "web-01")
    assert type(caught.value) is error
    assert (caught.value.status, caught.value.message, caught.value.details) == (
        status, "said the server", [])


def test_error_without_a_json_body() -> None:
    recorder = Recorder(httpx.Response(502, text="Bad Gateway from the proxy"))
    with recorder.client() as client, pytest.raises(ServerError, match="proxy"):
        client.get(Device, "web-01")


# ---- retries ---------------------------------------------------------------------------------

class Counting(httpx.BaseTransport):
    def __init__(self, inner: httpx.BaseTransport) -> None:
        self.inner, self.calls = inner, 0

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        self.calls += 1
        return self.inner.handle_request(request)


def test_get_retries_connection_errors_with_backoff(monkeypatch: pytest.MonkeyPatch) -> None:
    slept: list[float] = []
    monkeypatch.setattr(time, "sleep", slept.append)
    url = dead_url()
    transport = Counting(httpx.HTTPTransport())
    with Client(url, [Device], transport=transport, retries=3, backoff=0.1) as client:
        with pytest.raises(ConnectionFailed) as caught:
            client.get(Device, "web-01")
    assert transport.calls == 4 and slept == [0.1, 0.2, 0.4]
    assert caught.value.status == 0 and url in str(caught.value)


def test_connection_failure_is_quick_for_real() -> None:
    started = time.monotonic()
    with Client(dead_url(), [Device], retries=2, backoff=0.01) as client:
        with pytest.raises(ConnectionFailed):
            client.list(Device)
    assert time.monotonic() - started < 2


def test_writes_are_not_resent_blindly(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(time, "sleep", lambda _: None)

    def broken(request: httpx.Request) -> httpx.Response:
        raise httpx.ReadError("connection reset", request=request)

    transport = Counting(httpx.MockTransport(broken))
    with Client("http://api.test", [Device], transport=transport, retries=3) as client:
        for write in (lambda: client.create(Device, name="a", spec=WEB),
                      lambda: client.patch(Device, "a", {"port": 1})):
            transport.calls = 0
            with pytest.raises(ConnectionFailed):
                write()
            assert transport.calls == 1
        for idempotent in (lambda: client.delete(Device, "a"),
                           lambda: client.update_status(Device, "a", {})):
            transport.calls = 0
            with pytest.raises(ConnectionFailed):
                idempotent()
            assert transport.calls == 4


def test_writes_are_resent_when_never_sent(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(time, "sleep", lambda _: None)
    transport = Counting(httpx.HTTPTransport())
    with Client(dead_url(), [Device], transport=transport, retries=1) as client:
        with pytest.raises(ConnectionFailed):
            client.create(Device, name="a", spec=WEB)
    assert transport.calls == 2


def test_requests_wait_out_a_server_that_is_still_starting(tmp_path: Any) -> None:
    url = dead_url()
    port = int(url.rsplit(":", 1)[1])
    app = create_app(KINDS, FileStorage(tmp_path / "data"), settings=SETTINGS)
    late = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="error",
                                         loop="asyncio", http="h11", ws="none"))
    starter = threading.Timer(0.3, late.run)
    starter.start()
    try:
        with Client(url, KINDS, retries=6, backoff=0.1) as client:
            # Connection refused, retried with backoff until the server listens.
            assert client.list(Device) == []
            created = client.create(Device, name="late", spec=WEB)
        assert created.metadata.name == "late"
    finally:
        late.should_exit = True
        starter.join(5)


# ---- async client, in-process over ASGI ------------------------------------------------------

async def test_async_client(tmp_path: Any) -> None:
    app = create_app([Device], FileStorage(tmp_path / "data"), settings=SETTINGS)
    transport = httpx.ASGITransport(app=app)
    async with app.router.lifespan_context(app), AsyncClient(
        "http://api.test", [Device], transport=transport
    ) as client:
        web = await client.create(Device, name="web-01", spec=WEB, labels={"a": "b"})
        assert isinstance(web, Device) and web.metadata.labels == {"a": "b"}
        await client.create("device", name="sw-01", spec={"type": "switch", "ipAddress": "x"})
        assert await client.get("device", web.uid) == web
        assert [d.name for d in await client.list(Device)] == ["sw-01", "web-01"]
        assert [d.name async for d in client.iter_list(Device)] == ["sw-01", "web-01"]

        web.spec.port = 8443
        assert (await client.update(web)).spec.port == 8443
        with pytest.raises(Conflict):
            await client.update(web)  # web still carries the version it was read at
        tagged = await client.update_with_retry(Device, "web-01",
                                                lambda d: d.spec.tags.update(x="y"))
        assert tagged.spec.tags == {"x": "y"} and tagged.spec.port == 8443

        assert (await client.update_status(tagged, {"health": "ok"})).status.health == "ok"
        assert (await client.update_status(Device, "web-01",
                                           DeviceStatus(error_count=1))).status.error_count == 1
        with pytest.raises(ValidationError) as invalid:
            await client.update_status(Device, "web-01", {"errorCount": -1})
        assert invalid.value.details[0]["field"] == "status.errorCount"

        assert (await client.delete(Device, "web-01"))["uid"] == web.uid
        with pytest.raises(NotFound):
            await client.get(Device, "web-01")


async def test_async_wire_format_and_retries(monkeypatch: pytest.MonkeyPatch) -> None:
    async def no_sleep(_: float) -> None:
        return None

    monkeypatch.setattr(asyncio, "sleep", no_sleep)
    seen: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        if request.method == "GET" and len(seen) == 1:
            raise httpx.ConnectError("refused", request=request)
        if request.url.params.get("page") is None and request.method == "GET":
            return httpx.Response(200, json=[DOC], headers={"Link": '<?page=2>; rel="next"'})
        return httpx.Response(200, json=[DOC] if request.method == "GET" else DOC)

    async with AsyncClient("http://api.test/", [Device],
                           transport=httpx.MockTransport(handler)) as client:
        assert len(await client.list(Device, limit=1)) == 2
        obj = await client.patch_status(Device, "web-01", {"health": "ok"}, if_match="7")
        assert isinstance(obj, Device)
    retried, first, second, patch = seen
    assert retried.url == first.url and str(second.url) == "http://api.test/devices?page=2"
    assert (patch.method, patch.url.path, patch.headers["if-match"]) == (
        "PATCH", "/devices/web-01/status", '"7"')


# ---- the command line ------------------------------------------------------------------------

def run(server: str, *args: str, input: str | None = None,
        transport: httpx.BaseTransport | None = None, **env: str) -> Any:
    cli = client_cli(KINDS, SETTINGS, transport=transport)
    argv = ["--server", server, *args] if server else list(args)
    return CliRunner().invoke(cli, argv, input=input, env=env or None)


def created(server: str, name: str = "web-01", **fields: Any) -> dict[str, Any]:
    body = {"name": name, "type": "server", "ipAddress": "10.0.0.1", **fields}
    result = run(server, "device", "create", "--spec", json.dumps(body))
    assert result.exit_code == 0, result.output
    doc: dict[str, Any] = json.loads(result.stdout)
    return doc


def test_cli_create_prints_the_server_json(server: str) -> None:
    doc = created(server, labels={"env": "prod"})
    assert doc["metadata"]["name"] == "web-01" and doc["metadata"]["labels"] == {"env": "prod"}
    assert doc == httpx.get(f"{server}/devices/web-01").json()


def test_cli_create_from_files_and_stdin(server: str, tmp_path: Any) -> None:
    path = tmp_path / "sw.yaml"
    path.write_text("metadata:\n  name: sw-01\nspec:\n  type: switch\n  ipAddress: 10.0.0.2\n")
    result = run(server, "device", "create", "-f", str(path), "-o", "yaml")
    assert result.exit_code == 0, result.output
    assert yaml.safe_load(result.stdout)["spec"]["ipAddress"] == "10.0.0.2"

    stdin = json.dumps({"name": "r-01", "type": "router", "ipAddress": "10.0.0.3"})
    result = run(server, "device", "create", "-f", "-", input=stdin)
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["spec"]["type"] == "router"


def test_cli_list_and_get_outputs(server: str) -> None:
    web = created(server)
    created(server, "sw-01", type="switch")
    table = run(server, "device", "list")
    assert table.exit_code == 0, table.output
    lines = table.stdout.splitlines()
    assert lines[0].split() == ["NAME", "UID", "TYPE", "IP", "ADDRESS", "PORT", "HEALTH", "AGE"]
    assert lines[1].split()[:3] == ["sw-01", lines[1].split()[1], "switch"]
    assert web["metadata"]["uid"] in lines[2] and lines[2].split()[-1].endswith("s")

    as_json = run(server, "-o", "json", "device", "list")
    assert json.loads(as_json.stdout) == httpx.get(f"{server}/devices").json()
    as_yaml = run(server, "device", "list", "-o", "yaml")
    assert [d["metadata"]["name"] for d in yaml.safe_load(as_yaml.stdout)] == ["sw-01", "web-01"]

    got = run(server, "device", "get", web["metadata"]["uid"])
    assert got.exit_code == 0 and "web-01" in got.stdout and "sw-01" not in got.stdout
    assert json.loads(run(server, "device", "get", "web-01", "-o", "json").stdout) == web


def test_cli_list_empty(server: str) -> None:
    result = run(server, "device", "list")
    assert result.exit_code == 0 and result.stdout == ""
    assert "No resources found" in result.stderr


def test_cli_update_and_delete(server: str) -> None:
    web = created(server)
    result = run(server, "device", "update", "web-01", "--spec",
                 json.dumps({"type": "server", "ipAddress": "10.0.0.9", "port": 8443}))
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["spec"]["port"] == 8443

    result = run(server, "device", "delete", "web-01")
    assert result.exit_code == 0, result.output
    assert "deleted successfully" in result.stdout and web["metadata"]["uid"] in result.stdout
    result = run(server, "device", "get", "web-01")
    assert result.exit_code == 1 and "not found" in result.stderr and "404" in result.stderr


def test_cli_status_show_and_replace(server: str) -> None:
    created(server)
    shown = run(server, "device", "status", "web-01")
    assert shown.exit_code == 0 and "health" in shown.stdout and "unknown" in shown.stdout
    as_json = run(server, "device", "status", "web-01", "-o", "json")
    assert json.loads(as_json.stdout) == {"health": "unknown", "errorCount": 0}

    replaced = run(server, "device", "status", "web-01", "--replace", '{"health": "ok"}')
    assert replaced.exit_code == 0, replaced.output
    assert json.loads(replaced.stdout)["status"] == {"health": "ok", "errorCount": 0}
    # the old name of --replace still works, and is not shown
    again = run(server, "device", "status", "web-01", "--spec", '{"health": "bad"}')
    assert json.loads(again.stdout)["status"] == {"health": "bad", "errorCount": 0}
    shown = run(server, "device", "status", "--help")
    assert "--replace" in shown.stdout and "--spec" not in shown.stdout


def test_cli_patch_and_status_set(server: str) -> None:
    web = created(server)
    result = run(server, "device", "patch", "web-01", "--set", "port=8443", "--set", "tags.a=b")
    assert result.exit_code == 0, result.output
    spec = json.loads(result.stdout)["spec"]
    assert (spec["port"], spec["tags"]) == (8443, {"a": "b"})
    result = run(server, "device", "patch", "web-01", "--json-patch",
                 '[{"op": "remove", "path": "/tags/a"}]', "-o", "yaml")
    assert yaml.safe_load(result.stdout)["spec"]["tags"] == {}

    result = run(server, "device", "status", "web-01", "--set", "health=ok",
                 "--set", "errorCount=2")
    assert json.loads(result.stdout)["status"] == {"health": "ok", "errorCount": 2}
    result = run(server, "device", "status", "web-01", "--merge", '{"errorCount": 0}',
                 "-o", "yaml")
    assert yaml.safe_load(result.stdout)["status"] == {"health": "ok", "errorCount": 0}

    stale = run(server, "device", "delete", "web-01", "--if-match",
                web["metadata"]["resourceVersion"])
    assert stale.exit_code == 1 and "412 Precondition Failed" in stale.stderr


def test_cli_list_pages_and_selectors(server: str) -> None:
    for name in ("a", "b", "c"):
        result = run(server, "device", "create", "--spec", json.dumps(
            {"name": name, "type": "server", "ipAddress": "x", "labels": {"tier": name}}))
        assert result.exit_code == 0, result.output
    paged = run(server, "device", "list", "--limit", "1", "-o", "json")
    assert [d["metadata"]["name"] for d in json.loads(paged.stdout)] == ["a", "b", "c"]
    chosen = run(server, "device", "list", "-l", "tier in (a,c)", "-o", "json")
    assert [d["metadata"]["name"] for d in json.loads(chosen.stdout)] == ["a", "c"]
    bad = run(server, "device", "list", "-l", "tier in")
    assert bad.exit_code == 1 and "labelSelector" in bad.stderr


def test_cli_versions(server: str) -> None:
    result = run(server, "config", "create", "--spec", '{"name": "c1", "value": "a"}')
    assert result.exit_code == 0, result.output
    run(server, "config", "update", "c1", "--spec", '{"value": "b"}')
    table = run(server, "config", "versions", "c1")
    assert table.exit_code == 0, table.output
    lines = table.stdout.splitlines()
    assert lines[0].split()[:3] == ["VERSION", "ID", "CREATED"] and len(lines) == 3
    one = run(server, "config", "versions", "c1", "v1")
    assert json.loads(one.stdout)["spec"] == {"value": "a"}
    as_yaml = run(server, "config", "versions", "c1", "-o", "yaml")
    assert [v["versionId"] for v in yaml.safe_load(as_yaml.stdout)] == ["v1", "v2"]
    unversioned = run(server, "device", "versions", "x")
    assert unversioned.exit_code == 2 and "versioning=True" in unversioned.stderr


def test_cli_patch_requests_on_the_wire() -> None:
    recorder = Recorder()
    transport = httpx.MockTransport(recorder)
    for args in (["--set", "port=8443", "--set", "tags.a=b", "--unset", "tags.old"],
                 ["--spec", '{"port": 1}', "--if-match", "7"],
                 ["--json-patch", '[{"op": "remove", "path": "/tags"}]']):
        result = run("http://api.test", "device", "patch", "web-01", *args, transport=transport)
        assert result.exit_code == 0, result.output
    result = run("http://api.test", "device", "status", "web-01", "--set", "errorCount=2",
                 transport=transport)
    assert result.exit_code == 0, result.output
    shorthand, merge, json_patch, status = recorder.requests
    assert json.loads(shorthand.content) == {"port": 8443, "tags.a": "b", "tags.old": None}
    assert shorthand.headers["content-type"] == "application/shorthand-patch+json"
    assert merge.headers["content-type"] == "application/merge-patch+json"
    assert merge.headers["if-match"] == '"7"'
    assert json_patch.headers["content-type"] == "application/json-patch+json"
    assert (status.url.path, json.loads(status.content)) == ("/devices/web-01/status",
                                                             {"errorCount": 2})


def test_cli_server_errors(server: str) -> None:
    created(server)
    dup = run(server, "device", "create", "--spec",
              json.dumps({"name": "web-01", "type": "server", "ipAddress": "x"}))
    assert dup.exit_code == 1 and dup.stdout == ""
    assert "already exists" in dup.stderr and "409 Conflict" in dup.stderr

    invalid = run(server, "device", "create", "--spec",
                  json.dumps({"name": "bad", "type": "toaster", "ipAddress": "x"}))
    assert invalid.exit_code == 1 and "Traceback" not in invalid.stderr
    assert "400 Bad Request" in invalid.stderr and "  spec.type: " in invalid.stderr

    stale = run(server, "device", "update", "web-01", "--spec", json.dumps(
        {"metadata": {"resourceVersion": "999"}, "spec": {"type": "server", "ipAddress": "x"}}))
    assert stale.exit_code == 1 and "resourceVersion" in stale.stderr


def test_cli_connection_refused_names_the_server() -> None:
    url = dead_url()
    result = run("", "device", "list", DEVICE_API_SERVER=url, DEVICE_API_RETRIES="0")
    assert result.exit_code == 1 and "Traceback" not in result.stderr
    assert f"cannot reach the server at {url}" in result.stderr
    assert "DEVICE_API_SERVER" in result.stderr


def test_cli_usage_errors(server: str) -> None:
    bad_json = run(server, "device", "create", "--spec", "{nope")
    assert bad_json.exit_code == 2 and "not valid JSON" in bad_json.stderr
    neither = run(server, "device", "create")
    assert neither.exit_code == 2 and "--spec" in neither.stderr
    both = run(server, "device", "patch", "x", "--spec", "{}", "--set", "a=1")
    assert both.exit_code == 2
    unknown_kind = run(server, "toaster", "list")
    assert unknown_kind.exit_code == 2


def test_cli_help_documents_the_verbs() -> None:
    result = run("", "--help")
    assert result.exit_code == 0
    for word in ("list", "get", "create", "update", "patch", "delete", "status", "versions",
                 "device", "DEVICE_API_SERVER"):
        assert word in result.stdout
    status_help = run("", "device", "status", "--help").stdout
    assert "--set" in status_help and "--replace" in status_help


def test_main_is_the_generated_entry_point(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as done:
        fabrica.client.main(KINDS, SETTINGS, ["device", "--help"])
    assert done.value.code == 0
    assert "Usage: python -m device_api.client device" in capsys.readouterr().out


# ---- health and readiness (SPEC section 13) --------------------------------------------------

def test_health_and_ready_of_a_running_service(server: str, client: Client) -> None:
    health = client.health()
    assert health["status"] == "healthy" and health["resources"] == ["Device", "Config"]
    assert client.ready() == {"status": "ready", "checks": {"storage": "ok", "role": "ok"}}
    ready = run(server, "ready")
    assert ready.exit_code == 0 and json.loads(ready.stdout)["status"] == "ready"
    table = run(server, "health", "-o", "table")
    assert table.exit_code == 0 and "healthy" in table.stdout


async def test_async_health_and_a_service_not_started_is_not_ready(tmp_path: Any) -> None:
    # ASGITransport runs no lifespan: the service never started, so /ready is 503.
    app = create_app(KINDS, FileStorage(tmp_path / "data"), settings=SETTINGS)
    async with AsyncClient("http://t", kinds=KINDS, transport=httpx.ASGITransport(app=app)) as c:
        assert (await c.health())["service"] == "device-api"
        ready = await c.ready()
    assert ready["status"] == "not ready"


def test_ready_exits_non_zero_when_not_ready_or_unreachable() -> None:
    body = {"status": "not ready", "checks": {"storage": "unreachable: timed out"}}
    transport = httpx.MockTransport(lambda request: httpx.Response(503, json=body))
    result = run("http://api.test", "ready", transport=transport)
    assert result.exit_code == 1 and json.loads(result.stdout) == body
    assert run(dead_url(), "--retries", "0", "ready").exit_code == 1
    assert run(dead_url(), "--retries", "0", "health").exit_code == 1
