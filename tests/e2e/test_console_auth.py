"""The web console of a service with auth (SPEC sections 7 and 14): its files load without a
token, a token field keeps the token for the session, 401 and 403 are shown as such, and
what the user's role may not do is refused where it was tried, never silently."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from fabrica.auth import mint_token
from tests._support.console import Console, browser_for, screenshot_dir
from tests._support.e2e import EXAMPLES, Server, fabrica
from tests._support.tokens import SECRET

pytestmark = pytest.mark.e2e

PKG = "device_api"
ENV = {"DEVICE_API_AUTH_SECRET": SECRET}


def token(sub: str, role: str) -> str:
    return mint_token(SECRET, sub, [role], 600)


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    root = tmp_path_factory.mktemp("auth-console")
    fabrica("init", "device-api", "--auth", "--events", cwd=root)
    project = root / "device-api"
    fabrica("add", "resource", "Device", "--prefix", "dev", cwd=project)
    shutil.copy(EXAMPLES / "device" / "device.py", project / PKG / "resources" / "device.py")
    fabrica("generate", cwd=project)
    srv = Server(project, PKG, "--data-dir", str(root / "data"), env=ENV)
    yield srv
    srv.stop()


@pytest.fixture(scope="module")
def device(server: Server) -> dict:
    made = httpx.post(f"{server.url}/devices", json={
        "name": "web-01", "type": "server", "ipAddress": "10.0.0.1"},
        headers={"Authorization": f"Bearer {token('root', 'admin')}"})
    assert made.status_code == 201, made.text
    return dict(made.json())


@pytest.fixture
def console(server: Server, tmp_path: Path) -> Iterator[Console]:
    with browser_for(tmp_path) as browser:
        page = Console(browser, server.url, screenshot_dir(tmp_path))
        yield page
        assert page.external_requests() == []


def use_token(console: Console, value: str) -> None:
    """Through the token field, as a user: paste, Enter."""
    console.fill("#token", value)
    console.press("Enter")
    console.wait_ready()


def test_the_console_itself_needs_no_token(server: Server) -> None:
    for path in ("/ui", "/ui/", "/ui/js/app.js", "/ui/console.css", "/ui/kinds/devices"):
        assert httpx.get(f"{server.url}{path}", follow_redirects=True).status_code == 200
    assert httpx.get(f"{server.url}/devices").status_code == 401


def test_401_until_a_token_is_given_then_the_table(console: Console, device: dict) -> None:
    console.open("kinds/devices")
    assert console.text("label[for=token]") == "Bearer token"
    console.wait("document.querySelector('.alerts').innerText.includes('401 Unauthorized')")
    assert "token" in console.text(".alerts")
    console.shot("auth-401")

    viewer = token("alice", "viewer")
    use_token(console, viewer)
    console.wait("!!document.querySelector('.vt-row[data-name=\"web-01\"]')")
    assert console.text("#token-who") == "as alice (viewer)"
    assert console.js("sessionStorage.getItem('fabrica.console.token')") == viewer
    console.js("location.reload()")  # kept for the session
    console.wait_ready()
    console.wait("!!document.querySelector('.vt-row[data-name=\"web-01\"]')")
    console.shot("auth-viewer")


def test_a_viewer_is_refused_where_it_acts(console: Console, device: dict) -> None:
    console.open(f"kinds/devices/{device['metadata']['uid']}")
    use_token(console, token("alice", "viewer"))
    assert "web-01" in console.text("h1")

    console.focus("button.danger")
    console.press("Enter")
    console.wait("!!document.querySelector('dialog[open]')")
    console.press("Tab", shift=True)
    console.press("Enter")  # Delete, in the dialog
    console.wait("document.querySelector('dialog .error')?.hidden === false")
    refused = console.text("dialog .error")
    assert "403 Forbidden" in refused and "may not delete devices" in refused
    console.shot("auth-403-delete")
    console.press("Escape")

    console.go("kinds/devices/_new")
    console.fill("[data-path='metadata.name'] input", "web-02")
    console.fill("[data-path='spec.ipAddress'] input", "10.0.0.2")
    console.js("document.querySelector(\"[data-path='spec.type'] select\").value = 'server'")
    console.focus("form.editor button[type=submit]")
    console.press("Enter")
    console.wait("document.querySelector('#form-alerts').innerText.includes('403 Forbidden')")
    assert "may not create devices" in console.text("#form-alerts")

    admin = {"Authorization": f"Bearer {token('root', 'admin')}"}
    assert httpx.get(f"{console.url}/devices/web-01", headers=admin).status_code == 200
    assert httpx.get(f"{console.url}/devices/web-02", headers=admin).status_code == 404


def test_an_editor_saves_an_edit(console: Console, device: dict) -> None:
    console.open(f"kinds/devices/{device['metadata']['uid']}/edit")
    use_token(console, token("bob", "editor"))
    console.fill("[data-path='spec.port'] input", "8443")
    console.focus("form.editor button[type=submit]")
    console.press("Enter")
    console.wait("document.querySelector('.notice.success')?.innerText === "
                 "'Saved Device web-01.'")
    admin = {"Authorization": f"Bearer {token('root', 'admin')}"}
    assert httpx.get(f"{console.url}/devices/web-01", headers=admin).json()["spec"]["port"] == 8443

