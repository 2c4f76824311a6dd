"""The console never uses a deprecated API version (SPEC sections 9 and 14): with Device
stored in v2 and its default version v1 deprecated, every request the console makes for
devices names v2 (Accept and Content-Type ``application/json;version=v2``), and the pages
show and write v2's fields."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests._support.console import Console, browser_for, screenshot_dir
from tests._support.e2e import EXAMPLES, Server, fabrica

pytestmark = pytest.mark.e2e

PKG = "device_api"
V2 = "application/json;version=v2"


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """The api-versions example, with old clients' v1 still the default (and deprecated)."""
    root = tmp_path_factory.mktemp("versions-console")
    fabrica("init", "device-api", cwd=root)
    project = root / "device-api"
    fabrica("add", "resource", "Device", "--prefix", "dev", cwd=project)
    resources = project / PKG / "resources"
    source = (EXAMPLES / "api-versions" / "device.py").read_text()
    moved = source.replace('prefix="dev", version="v2")', 'prefix="dev", version="v2",\n'
                           '             default_version="v1")')
    assert moved != source
    (resources / "device.py").write_text(moved)
    shutil.copy(EXAMPLES / "api-versions" / "device_v1.py", resources / "device_v1.py")
    fabrica("generate", cwd=project)
    srv = Server(project, PKG, "--data-dir", str(root / "data"))
    yield srv
    srv.stop()


@pytest.fixture
def console(server: Server, tmp_path: Path) -> Iterator[Console]:
    with browser_for(tmp_path) as browser:
        page = Console(browser, server.url, screenshot_dir(tmp_path))
        yield page
        assert page.external_requests() == []
        assert page.errors() == []


def device_requests(console: Console) -> list[dict]:
    return [r for r in console.page.requests() if "/devices" in r["url"]]


def test_a_deprecated_default_version_is_not_used(console: Console, server: Server) -> None:
    old = httpx.post(f"{server.url}/devices", json={
        "name": "legacy", "type": "router", "ipAddress": "10.0.0.1"})  # a v1 client
    assert old.status_code == 201 and old.headers["Deprecation"] == "true"

    console.open()
    assert "v2 (used here), v1 (default, deprecated)" in console.text("table.kinds")
    console.go("kinds/devices")
    console.wait("!!document.querySelector('.vt-row[data-name=\"legacy\"]')")
    console.go(f"kinds/devices/{old.json()['metadata']['uid']}")
    assert "10.0.0.1" in console.text("#section-spec")
    assert "schemaVersion: v2" in console.text("pre.yaml")
    assert "address: 10.0.0.1" in console.text("pre.yaml")

    console.go("kinds/devices/_new")
    assert console.count("[data-path='spec.address'] input") == 1  # v2's field, not ipAddress
    assert console.count("[data-path='spec.ipAddress']") == 0
    console.fill("[data-path='metadata.name'] input", "modern")
    console.fill("[data-path='spec.address'] input", "10.0.0.7")
    console.fill("[data-path='spec.location'] input", "rack-7")
    console.js("document.querySelector(\"[data-path='spec.type'] select\").value = 'switch'")
    console.focus("form.editor button[type=submit]")
    console.press("Enter")
    console.wait("document.querySelector('.notice.success')?.innerText === "
                 "'Created Device modern.'")
    made = httpx.get(f"{server.url}/devices/modern", headers={"Accept": V2}).json()
    assert (made["spec"]["address"], made["spec"]["location"]) == ("10.0.0.7", "rack-7")

    sent = device_requests(console)
    assert {r["method"] for r in sent} >= {"GET", "POST"}
    for request in sent:
        headers = {k.lower(): v for k, v in request["headers"].items()}
        assert headers.get("accept") == V2, request
        if request["method"] == "POST":
            assert headers.get("content-type") == V2, request
