"""The server with auth on, in-process: open and protected paths, 401/403 as RFC 6750 and
SPEC say, each role against each verb, the actor of every event, OpenAPI's bearer scheme."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest

from fabrica import ServiceSettings
from fabrica.auth import (
    DEFAULT_MODEL,
    DEFAULT_POLICY,
    Auth,
    JWKSCache,
    Policy,
    PublicKey,
    TokenVerifier,
)
from fabrica.events import MemoryBus
from fabrica.server import create_app
from fabrica.server.http._auth import request_target
from fabrica.storage import FileStorage
from tests._support.app import Device, serve_in_process
from tests._support.tokens import SECRET, KeyPair, hs_token

RSA = KeyPair("RSA", kid="k")
DEVICE = {"name": "web-01", "type": "server", "ipAddress": "10.0.0.1"}
SPEC = {"type": "server", "ipAddress": "10.0.0.1", "port": 444}
EXTRA_POLICY = "p, lister, devices, list\n"


def make_auth(tmp_path: Path, policy: str = DEFAULT_POLICY + EXTRA_POLICY) -> Auth:
    directory = tmp_path / "auth"
    directory.mkdir(exist_ok=True)
    (directory / "model.conf").write_text(DEFAULT_MODEL)
    (directory / "policy.csv").write_text(policy)
    verifier = TokenVerifier(public_keys=[PublicKey.from_pem(RSA.public_pem)], secret=SECRET)
    return Auth(verifier, Policy(directory))


@pytest.fixture
async def served(tmp_path: Path) -> AsyncIterator[tuple[httpx.AsyncClient, MemoryBus]]:
    settings = ServiceSettings(project="device-api", package="device_api", events=True)
    bus = MemoryBus()
    app = create_app([Device], FileStorage(tmp_path / "data"), settings=settings, bus=bus,
                     auth=make_auth(tmp_path))
    async with serve_in_process(app) as client:
        yield client, bus


@pytest.fixture
def client(served: tuple[httpx.AsyncClient, MemoryBus]) -> httpx.AsyncClient:
    return served[0]


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def as_role(*roles: str, sub: str = "alice") -> dict[str, str]:
    return bearer(RSA.token(sub, scope=" ".join(roles)))


def admin() -> dict[str, str]:
    """Made when used: a token minted at collection could expire before a long run gets here."""
    return as_role("admin", sub="root")


@pytest.mark.parametrize("path", ["/health", "/openapi.json", "/docs",
                                  "/docs/static/swagger-ui.css", "/ui/", "/ui/js/app.js",
                                  "/ui/kinds/devices/web-01"])
async def test_open_paths_need_no_token(client: httpx.AsyncClient, path: str) -> None:
    assert (await client.get(path)).status_code == 200


@pytest.mark.parametrize("path", ["/devices", "/devices/web-01", "/events", "/metrics",
                                  "/nonexistent"])
async def test_no_token_is_401_with_a_bare_bearer_challenge(client: httpx.AsyncClient,
                                                            path: str) -> None:
    response = await client.get(path)
    assert response.status_code == 401
    assert response.headers["WWW-Authenticate"] == 'Bearer realm="device-api"'
    assert response.json() == {"error": "authentication required: send Authorization: "
                                        "Bearer TOKEN", "code": 401}


@pytest.mark.parametrize("header", ["Basic YWxpY2U6cGFzcw==", "Bearer", "Bearer   ", "Token x"])
async def test_other_schemes_count_as_no_token(client: httpx.AsyncClient, header: str) -> None:
    response = await client.get("/devices", headers={"Authorization": header})
    assert response.status_code == 401
    assert "error=" not in response.headers["WWW-Authenticate"]


@pytest.mark.parametrize(("token", "description"), [
    ("not-a-jwt", "malformed token"),
    (RSA.token(ttl=-120), "the token has expired"),
    (KeyPair("RSA", kid="k").token(ttl=86400), "the token's signature does not verify"),
    (hs_token(secret="another-secret-that-is-32-bytes-long", ttl=86400),
     "signature does not verify"),
])
async def test_an_invalid_token_is_401_invalid_token(client: httpx.AsyncClient, token: str,
                                                     description: str) -> None:
    response = await client.get("/devices", headers=bearer(token))
    assert response.status_code == 401
    challenge = response.headers["WWW-Authenticate"]
    assert challenge.startswith('Bearer realm="device-api", error="invalid_token", '
                                'error_description="')
    assert description in challenge
    body = response.json()
    assert body["code"] == 401 and body["error"].startswith("invalid token: ")
    assert description in body["error"]


async def test_a_valid_token_reaches_the_api(client: httpx.AsyncClient) -> None:
    created = await client.post("/devices", json=DEVICE, headers=admin())
    assert created.status_code == 201, created.text
    listed = await client.get("/devices", headers=bearer(hs_token("dev", scope="viewer")))
    assert [d["metadata"]["name"] for d in listed.json()] == ["web-01"]


@pytest.mark.parametrize("role", ["admin", "editor", "viewer", "lister"])
async def test_a_sub_named_like_a_role_gets_no_rights_from_its_name(client: httpx.AsyncClient,
                                                                    role: str) -> None:
    """An issuer that lets users choose their ``sub`` must not let one choose ``admin``."""
    assert (await client.post("/devices", json=DEVICE, headers=admin())).status_code == 201
    token = bearer(RSA.token(role))  # no scope, no roles
    for verb in ("list", "get", "create", "delete"):
        response = await call(client, verb, token)
        assert response.status_code == 403, (role, verb, response.text)
    assert (await client.get("/devices/web-01", headers=admin())).status_code == 200


@pytest.mark.parametrize("exp", [10**400, 10**4000], ids=["1e400", "1e4000"])
async def test_an_expiry_past_any_float_is_no_500(client: httpx.AsyncClient, exp: int) -> None:
    response = await client.get("/devices", headers=bearer(RSA.token("dev", scope="viewer",
                                                                     exp=exp)))
    assert response.status_code == 200, response.text


# ---- each role against each verb -------------------------------------------------------------

async def call(client: httpx.AsyncClient, verb: str, headers: dict[str, str]) -> httpx.Response:
    merge = {**headers, "Content-Type": "application/merge-patch+json"}
    requests = {
        "list": lambda: client.get("/devices", headers=headers),
        # (a watch streams until it times out: the in-process transport reads to the end)
        "watch": lambda: client.get("/devices?watch=true&timeoutSeconds=1", headers=headers),
        "get": lambda: client.get("/devices/web-01", headers=headers),
        "create": lambda: client.post("/devices", json={**DEVICE, "name": "web-02"},
                                      headers=headers),
        "update": lambda: client.put("/devices/web-01", json={"spec": SPEC}, headers=headers),
        "patch": lambda: client.patch("/devices/web-01", content=b'{"port": 445}',
                                      headers=merge),
        "status": lambda: client.patch("/devices/web-01/status",
                                       content=b'{"health": "ok"}', headers=merge),
        "delete": lambda: client.delete("/devices/web-01", headers=headers),
    }
    return await requests[verb]()


ROLE_VERBS = {
    "admin": {"list", "watch", "get", "create", "update", "patch", "status", "delete"},
    "editor": {"list", "watch", "get", "create", "update", "patch", "status"},
    "viewer": {"list", "watch", "get"},
    "lister": {"list"},
    "nobody": set(),
}


@pytest.mark.parametrize("role", sorted(ROLE_VERBS))
@pytest.mark.parametrize("verb", ["list", "watch", "get", "create", "update", "patch", "status",
                                  "delete"])
async def test_each_role_against_each_verb(client: httpx.AsyncClient, role: str,
                                           verb: str) -> None:
    assert (await client.post("/devices", json=DEVICE, headers=admin())).status_code == 201
    response = await call(client, verb, as_role(role))
    if verb in ROLE_VERBS[role]:
        assert response.status_code in (200, 201), (role, verb, response.text)
        return
    assert response.status_code == 403, (role, verb, response.text)
    assert response.json() == {
        "error": f"forbidden: alice (roles: {role}) may not {verb} devices", "code": 403}
    assert 'error="insufficient_scope"' in response.headers["WWW-Authenticate"]
    after = await client.get("/devices/web-01", headers=admin())  # and nothing changed
    assert after.json()["metadata"]["generation"] == 1
    assert after.json()["status"]["health"] == "unknown"


async def test_events_and_metrics_need_a_role_that_reads(client: httpx.AsyncClient) -> None:
    assert (await client.get("/metrics", headers=as_role("viewer"))).status_code == 200
    response = await client.get("/metrics", headers=as_role("lister"))
    assert response.json()["error"] == "forbidden: alice (roles: lister) may not get metrics"
    response = await client.get("/events", headers=as_role("lister"))
    assert response.json()["error"] == "forbidden: alice (roles: lister) may not watch events"


@pytest.mark.parametrize(("method", "path", "query", "target"), [
    ("GET", "/racks", "", ("racks", "list")),
    ("HEAD", "/racks", "", ("racks", "list")),
    ("GET", "/racks", "watch=true", ("racks", "watch")),
    ("GET", "/racks", "limit=5&watch=1", ("racks", "watch")),
    ("GET", "/racks", "watch=false", ("racks", "list")),
    ("GET", "/racks/r1", "watch=true", ("racks", "get")),
    ("POST", "/racks", "", ("racks", "create")),
    ("PUT", "/racks/r1", "", ("racks", "update")),
    ("PATCH", "/racks/r1", "", ("racks", "patch")),
    ("DELETE", "/racks/r1", "", ("racks", "delete")),
    ("PUT", "/racks/r1/status", "", ("racks", "status")),
    ("PATCH", "/racks/r1/status", "", ("racks", "status")),
    ("GET", "/racks/r1/versions", "", ("racks", "get")),
    ("DELETE", "/racks/r1/versions/v1", "", ("racks", "delete")),
    ("GET", "/events", "type=io.fabrica.**", ("events", "watch")),
    ("GET", "/metrics", "", ("metrics", "get")),
    ("OPTIONS", "/racks", "", ("racks", "options")),
    ("GET", "/", "", ("*", "get")),
])
def test_request_targets(method: str, path: str, query: str, target: tuple[str, str]) -> None:
    assert request_target(method, path, query.encode()) == target


async def test_openapi_declares_the_bearer_scheme(client: httpx.AsyncClient) -> None:
    from openapi_spec_validator import validate

    doc = (await client.get("/openapi.json")).json()
    validate(doc)
    assert doc["components"]["securitySchemes"]["bearerAuth"] == {
        "type": "http", "scheme": "bearer", "bearerFormat": "JWT",
        "description": doc["components"]["securitySchemes"]["bearerAuth"]["description"]}
    assert doc["security"] == [{"bearerAuth": []}]
    assert doc["paths"]["/health"]["get"]["security"] == []
    assert doc["paths"]["/openapi.json"]["get"]["security"] == []
    for method in ("get", "post"):
        responses = doc["paths"]["/devices"][method]["responses"]
        assert {"401", "403"} <= set(responses)
        assert "security" not in doc["paths"]["/devices"][method]
    assert "/docs" not in doc["paths"] or doc["paths"]["/docs"]["get"]["security"] == []


async def test_an_unreachable_issuer_is_503_not_401(tmp_path: Path) -> None:
    from tests._support.e2e import free_port

    auth = make_auth(tmp_path)
    auth.verifier.jwks = JWKSCache(f"http://127.0.0.1:{free_port()}/jwks.json", timeout=1)
    app = create_app([Device], FileStorage(tmp_path / "data"), auth=auth)
    async with serve_in_process(app) as client:
        response = await client.get("/devices", headers=bearer(KeyPair("RSA").token()))
    assert response.status_code == 503 and response.headers["Retry-After"] == "5"
    assert "keys are unavailable" in response.json()["error"]


async def test_websockets_are_refused_without_a_token(tmp_path: Path) -> None:
    from fabrica.server.http._auth import AuthMiddleware

    reached: list[str] = []

    async def app(scope: object, receive: object, send: object) -> None:
        reached.append("app")

    sent: list[dict[str, object]] = []

    async def send(message: dict[str, object]) -> None:
        sent.append(message)

    middleware = AuthMiddleware(app, make_auth(tmp_path), "x")  # type: ignore[arg-type]
    scope = {"type": "websocket", "path": "/devices", "headers": [], "query_string": b""}
    await middleware(scope, None, send)  # type: ignore[arg-type]
    assert sent == [{"type": "websocket.close", "code": 1008}] and reached == []
    scope["headers"] = [(b"authorization", f"Bearer {RSA.token(scope='viewer')}".encode())]
    await middleware(scope, None, send)  # type: ignore[arg-type]
    assert reached == ["app"]


def test_services_without_auth_do_not_load_pyjwt_or_casbin() -> None:
    import subprocess
    import sys

    check = ("import sys, fabrica.server, fabrica.codegen, fabrica.client\n"
             "print(sorted(m for m in ('jwt', 'casbin') if m in sys.modules))")
    done = subprocess.run([sys.executable, "-c", check], capture_output=True, text=True,
                          timeout=60)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "[]"


async def _decisions(client: httpx.AsyncClient) -> dict[str, float]:
    text = (await client.get("/metrics", headers=admin())).text
    found = {}
    for line in text.splitlines():
        if line.startswith("fabrica_authz_decisions_total{"):
            labels, value = line.rsplit(" ", 1)
            found[labels.split('"')[1]] = float(value)
    return found


@pytest.mark.parametrize("mode", ["enforce", "shadow"])
async def test_shadow_mode_serves_what_enforce_denies_and_counts_it(
        tmp_path: Path, mode: str, caplog: pytest.LogCaptureFixture) -> None:
    from fabrica.service import Service, ServiceOptions

    settings = ServiceSettings(project="device-api", package="device_api", events=True)
    service = Service([Device], FileStorage(tmp_path / "data"),
                      ServiceOptions(settings=settings, auth_mode=mode),  # type: ignore[arg-type]
                      bus=MemoryBus(), auth=make_auth(tmp_path))
    caplog.set_level("INFO", logger="fabrica.auth")
    async with serve_in_process(create_app(service)) as client:
        created = await client.post("/devices", json=DEVICE, headers=as_role("viewer"))
        assert created.status_code == (201 if mode == "shadow" else 403)
        assert (await client.get("/devices", headers=as_role("viewer"))).status_code == 200
        # No one to decide about: 401 in both modes, and no decision counted.
        assert (await client.post("/devices", json=DEVICE)).status_code == 401
        bad = await client.post("/devices", json=DEVICE, headers=bearer("not-a-token"))
        assert bad.status_code == 401
        # The viewer's denied create and allowed list; then the admin's /metrics read.
        assert await _decisions(client) == {"allow": 2.0, "deny": 1.0}
    shadowed = [r.getMessage() for r in caplog.records if "authz shadow" in r.getMessage()]
    if mode == "enforce":
        assert shadowed == []
    else:
        assert shadowed[:2] == ["authz shadow: deny (served) alice (roles: viewer) create devices",
                                "authz shadow: allow alice (roles: viewer) list devices"]
