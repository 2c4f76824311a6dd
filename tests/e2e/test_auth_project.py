"""A project made with ``fabrica init --auth``, served as a process: it refuses to start
without a key source, takes development tokens from its own ``token`` command and RS256/ES256
tokens from a JWKS served here, reloads its policy on SIGHUP, and its client CLI and library
send tokens; Swagger UI's Authorize button works in a real Chromium."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import jwt
import pytest

from fabrica.auth import mint_token
from tests._support.cdp import Browser, Page, chromium
from tests._support.e2e import EXAMPLES, Server, fabrica
from tests._support.tokens import SECRET, JWKSServer, KeyPair
from tests._support.wait import eventually_sync

PKG = "device_api"
ENV = {"DEVICE_API_AUTH_SECRET": SECRET}
DEVICE = {"name": "web-01", "type": "server", "ipAddress": "10.0.0.1"}


@pytest.fixture(scope="module")
def project(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("auth")
    fabrica("init", "device-api", "--auth", "--events", cwd=root)
    project = root / "device-api"
    fabrica("add", "resource", "Device", "--prefix", "dev", cwd=project)
    shutil.copy(EXAMPLES / "device" / "device.py", project / PKG / "resources" / "device.py")
    fabrica("generate", cwd=project)
    return project


@pytest.fixture(scope="module")
def server(project: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    srv = Server(project, PKG, "--data-dir", str(tmp_path_factory.mktemp("data")), env=ENV)
    yield srv
    srv.stop()


def python(project: Path, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, *args], cwd=project, capture_output=True, text=True,
                          timeout=60, env={**os.environ, **env})


def token_command(project: Path, sub: str, scope: str, *extra: str) -> str:
    done = python(project, "-m", f"{PKG}.server", "token", "--sub", sub, "--scope", scope,
                  *extra, **ENV)
    assert done.returncode == 0, done.stderr
    return done.stdout.strip()


def token(project: Path, sub: str, scope: str) -> str:
    """What `token_command` prints (tested there), minted here: a process start saved."""
    return mint_token(SECRET, sub, scope.split(), 600)


def client(project: Path, server: Server, *args: str, **env: str
           ) -> subprocess.CompletedProcess[str]:
    return python(project, "-m", f"{PKG}.client", "--server", server.url, *args, **env)


def bearer(value: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {value}"}


def serve_fails(project: Path, *args: str, **env: str) -> str:
    done = python(project, "-m", f"{PKG}.server", "serve", "--port", "0", *args, **env)
    assert done.returncode == 2, done.stdout + done.stderr
    return done.stderr


# ---- start-up ----------------------------------------------------------------------------

def test_the_project_has_its_policy_and_refuses_to_start_without_a_key_source(
    project: Path,
) -> None:
    assert (project / "auth" / "model.conf").is_file()
    assert "p, viewer, *, list" in (project / "auth" / "policy.csv").read_text()
    message = serve_fails(project, DEVICE_API_AUTH_SECRET="")
    assert "auth is on but no key source is configured" in message
    assert "--auth-jwks-url" in message and "--auth-secret" in message
    assert "at least 32 bytes" in serve_fails(project, "--auth-secret", "short")
    assert "cannot read the public key" in serve_fails(project, "--auth-public-key", "nope.pem")
    assert "model.conf" in serve_fails(project, "--auth-policy", "elsewhere", **ENV)


def test_a_project_without_auth_refuses_auth_options(tmp_path: Path) -> None:
    fabrica("init", "plain-api", cwd=tmp_path)
    done = python(tmp_path / "plain-api", "-m", "plain_api.server", "serve", "--port", "0",
                  PLAIN_API_AUTH_SECRET=SECRET)
    assert done.returncode == 2
    assert "--auth-secret given, but this project has auth off" in done.stderr


# ---- development tokens, the CLI and the library ------------------------------------------------

def test_tokens_from_the_token_command(project: Path, server: Server) -> None:
    assert httpx.get(f"{server.url}/health").status_code == 200
    assert httpx.get(f"{server.url}/devices").status_code == 401
    viewer = token_command(project, "vera", "viewer")
    assert httpx.get(f"{server.url}/devices", headers=bearer(viewer)).status_code == 200
    short = token_command(project, "vera", "viewer editor", "--ttl", "90s")
    assert httpx.get(f"{server.url}/devices", headers=bearer(short)).status_code == 200
    claims = jwt.decode(short, SECRET, algorithms=["HS256"])
    assert claims["exp"] - claims["iat"] == 90 and claims["scope"] == "viewer editor"
    missing = python(project, "-m", f"{PKG}.server", "token", "--sub", "x",
                     DEVICE_API_AUTH_SECRET="")
    assert missing.returncode == 2 and "no secret" in missing.stderr
    bad_ttl = python(project, "-m", f"{PKG}.server", "token", "--sub", "x", "--ttl", "soon",
                     **ENV)
    assert bad_ttl.returncode == 2 and "not a duration" in bad_ttl.stderr


def test_the_client_cli_with_and_without_a_token(project: Path, server: Server) -> None:
    spec = json.dumps(DEVICE)
    anonymous = client(project, server, "device", "create", "--spec", spec)
    assert anonymous.returncode == 1
    assert "authentication required" in anonymous.stderr
    assert "(401 Unauthorized)" in anonymous.stderr
    assert "--token TOKEN or set DEVICE_API_TOKEN" in anonymous.stderr

    editor = token(project, "eddie", "editor")
    created = client(project, server, "--token", editor, "device", "create", "--spec", spec)
    assert created.returncode == 0, created.stderr
    listed = client(project, server, "device", "list", DEVICE_API_TOKEN=editor)
    assert listed.returncode == 0 and "web-01" in listed.stdout

    viewer = token(project, "vera", "viewer")
    denied = client(project, server, "--token", viewer, "device", "delete", "web-01")
    assert denied.returncode == 1
    assert "forbidden: vera (roles: viewer) may not delete devices (403 Forbidden)" in (
        denied.stderr)
    assert "policy does not allow" in denied.stderr

    refused = client(project, server, "--token", editor + "x", "device", "list")
    assert refused.returncode == 1 and "invalid token" in refused.stderr
    assert "refused the token" in refused.stderr


SCRIPT = """
from {pkg}.client import Client, Forbidden, Unauthorized
with Client() as anonymous:
    try:
        anonymous.list("device")
    except Unauthorized as exc:
        print("Unauthorized", exc.status)
with Client(token={viewer!r}) as viewer:
    print([d.metadata.name for d in viewer.list("device")])
    try:
        viewer.delete("device", "web-01")
    except Forbidden as exc:
        print("Forbidden", exc.status, exc)
"""


def test_the_client_library_sends_tokens_and_raises_typed_errors(
    project: Path, server: Server
) -> None:
    admin = token(project, "root", "admin")
    httpx.post(f"{server.url}/devices", json={**DEVICE, "name": "lib-01"}, headers=bearer(admin))
    viewer = token(project, "vera", "viewer")
    done = python(project, "-c", SCRIPT.format(pkg=PKG, viewer=viewer),
                  DEVICE_API_SERVER=server.url, DEVICE_API_TOKEN="")
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert lines[0] == "Unauthorized 401"
    assert "lib-01" in lines[1]
    assert lines[2] == "Forbidden 403 forbidden: vera (roles: viewer) may not delete devices"
    from_env = python(project, "-c", f"from {PKG}.client import Client\n"
                      "print(len(Client().list('device')))",
                      DEVICE_API_SERVER=server.url, DEVICE_API_TOKEN=viewer)
    assert from_env.returncode == 0, from_env.stderr
    assert int(from_env.stdout) >= 1


def test_watching_needs_a_token_a_viewer_has(project: Path, server: Server) -> None:
    """``list -w`` sends the token too; a refused one ends it with the server's message
    rather than retrying for ever."""
    watch = ("device", "list", "-w", "--watch-timeout", "1", "-o", "json")
    anonymous = client(project, server, *watch, DEVICE_API_TOKEN="")
    assert anonymous.returncode == 1 and "(401 Unauthorized)" in anonymous.stderr
    viewer = token(project, "vera", "viewer")
    watched = client(project, server, *watch, DEVICE_API_TOKEN=viewer)
    assert watched.returncode == 0, watched.stderr
    assert all(json.loads(line)["type"] == "ADDED" for line in watched.stdout.splitlines())
    nobody = token(project, "nina", "nobody")
    denied = client(project, server, "--token", nobody, *watch)
    assert denied.returncode == 1 and "(403 Forbidden)" in denied.stderr


# ---- SIGHUP ----------------------------------------------------------------------------

def test_sighup_reloads_the_policy(project: Path, tmp_path: Path) -> None:
    copy = tmp_path / "project"
    shutil.copytree(project, copy, ignore=shutil.ignore_patterns("*.log", "__pycache__"))
    srv = Server(copy, PKG, "--data-dir", str(tmp_path / "data"), env=ENV)
    try:
        admin, viewer = token(copy, "root", "admin"), token(copy, "vera", "viewer")
        for name in ("a", "b"):
            httpx.post(f"{srv.url}/devices", json={**DEVICE, "name": name}, headers=bearer(admin))
        assert httpx.delete(f"{srv.url}/devices/a", headers=bearer(viewer)).status_code == 403
        policy = copy / "auth" / "policy.csv"
        policy.write_text(policy.read_text() + "p, viewer, devices, delete\n")
        srv.process.send_signal(signal.SIGHUP)
        wait_for_log(srv, "policy reloaded")
        assert httpx.delete(f"{srv.url}/devices/a", headers=bearer(viewer)).status_code == 200

        (copy / "auth" / "model.conf").write_text("[matchers]\nbroken\n")
        srv.process.send_signal(signal.SIGHUP)
        wait_for_log(srv, "policy reload failed, keeping the previous policy")
        assert httpx.delete(f"{srv.url}/devices/b", headers=bearer(viewer)).status_code == 200
        assert srv.process.poll() is None
    finally:
        srv.stop()


def wait_for_log(server: Server, text: str, timeout: float = 10) -> None:
    def logged() -> bool:
        assert text in server.output(), server.output()
        return True
    eventually_sync(logged, timeout=timeout, interval=0.05)


# ---- RS256 / ES256 from a JWKS ----------------------------------------------------------------

def test_tokens_checked_against_a_jwks(project: Path, tmp_path: Path) -> None:
    rsa_key, ec_key = KeyPair("RSA", kid="rsa-2025"), KeyPair("EC", kid="ec-2025")
    issuer = JWKSServer(rsa_key, ec_key)
    srv = Server(project, PKG, "--data-dir", str(tmp_path / "data"),
                 env={"DEVICE_API_AUTH_JWKS_URL": issuer.url,
                      "DEVICE_API_AUTH_ISSUER": "https://tokensmith.test",
                      "DEVICE_API_AUTH_AUDIENCE": "device-api", "DEVICE_API_AUTH_SECRET": ""})
    try:
        claims = {"iss": "https://tokensmith.test", "aud": "device-api", "scope": "viewer"}
        url = f"{srv.url}/devices"
        assert httpx.get(url, headers=bearer(rsa_key.token(**claims))).status_code == 200
        assert httpx.get(url, headers=bearer(ec_key.token(**claims))).status_code == 200
        stranger = KeyPair("RSA", kid="unknown")
        refused = httpx.get(url, headers=bearer(stranger.token(**claims)))
        assert refused.status_code == 401 and "kid 'unknown'" in refused.json()["error"]
        wrong_aud = httpx.get(url, headers=bearer(rsa_key.token(**{**claims, "aud": "x"})))
        assert wrong_aud.status_code == 401 and "audience" in wrong_aud.json()["error"].lower()
        assert "JWKS " + issuer.url in srv.output()
    finally:
        srv.stop()
        issuer.close()


# ---- Swagger UI's Authorize button, in Chromium -------------------------------------------------

@pytest.fixture
def browser(tmp_path: Path) -> Iterator[Browser]:
    if chromium() is None:
        pytest.skip("chromium is not installed (apt-get install chromium; .ci/run does)")
    b = Browser(tmp_path / "profile")
    yield b
    b.close()


def operation(method: str, path: str) -> str:
    return ("[...document.querySelectorAll('.opblock')].find(e => "
            f"e.querySelector('.opblock-summary-method').textContent === {json.dumps(method)} "
            "&& e.querySelector('.opblock-summary-path').getAttribute('data-path') === "
            f"{json.dumps(path)})")


def execute(page: Page, op: str, before: str = "") -> str:
    """Click Execute on an opened, tried-out operation; the status of the response, once it
    differs from `before` (the status shown before the click)."""
    page.evaluate(f"{op}.querySelector('button.execute').click()")
    cell = f"{op}.querySelector('.live-responses-table tbody .response-col_status')"
    status: str = page.wait_for(
        f"(({cell} || {{}}).textContent || '').trim() !== {json.dumps(before)} "
        f"&& ({cell} || {{}}).textContent")
    return status.strip()


def test_swagger_ui_authorize_sends_the_token(project: Path, server: Server,
                                              browser: Browser) -> None:
    admin = token(project, "root", "admin")
    httpx.post(f"{server.url}/devices", json={**DEVICE, "name": "ui-01"}, headers=bearer(admin))
    page = browser.new_page()
    page.goto(f"{server.url}/docs")
    page.wait_for("document.querySelectorAll('.opblock').length > 0")
    op = operation("GET", "/devices")
    page.evaluate(f"{op}.querySelector('.opblock-summary-control').click()")
    page.wait_for(f"!!{op}.querySelector('.try-out__btn')")
    page.evaluate(f"{op}.querySelector('.try-out__btn').click()")
    page.wait_for(f"!!{op}.querySelector('button.execute')")
    assert execute(page, op) == "401"

    page.evaluate("document.querySelector('.auth-wrapper .authorize').click()")
    page.wait_for("!!document.querySelector('.modal-ux input')")
    page.evaluate("document.querySelector('.modal-ux input').focus()")
    page.send("Input.insertText", {"text": token(project, "vera", "viewer")})
    page.evaluate("document.querySelector('.modal-ux .auth-btn-wrapper .authorize').click()")
    page.wait_for("!!document.querySelector('.modal-ux .auth-btn-wrapper .btn-done')")
    page.evaluate("document.querySelector('.modal-ux .auth-btn-wrapper .btn-done').click()")
    assert page.evaluate("Object.keys(window.ui.authSelectors.authorized().toJS())") == [
        "bearerAuth"]

    assert execute(page, op, before="401") == "200"
    body = page.evaluate(f"{op}.querySelector('.live-responses-table tbody').textContent")
    assert '"ui-01"' in body
    curl = page.evaluate(f"{op}.querySelector('.curl')?.textContent || ''")
    assert "Authorization: Bearer" in curl
