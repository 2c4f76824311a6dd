"""The web console's files as the server serves them (SPEC section 14); the pages themselves
are tested in Chromium (tests/e2e/test_console*.py)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

import fabrica.server
from tests._support.app import make_client

CONSOLE = Path(fabrica.server.__file__).parent / "http" / "_static" / "console"
MODULES = sorted(p.name for p in (CONSOLE / "js").glob("*.js"))


async def test_ui_redirects_to_the_page_which_loads_its_modules(tmp_path: Path) -> None:
    async with make_client(tmp_path) as client:
        redirect = await client.get("/ui")
        assert redirect.status_code in (307, 308) and redirect.headers["location"].endswith("/ui/")
        page = await client.get("/ui/")
        assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
        assert '<script type="module" src="/ui/js/app.js">' in page.text
        preloaded = sorted(re.findall(r'rel="modulepreload" href="/ui/js/([^"]+)"', page.text))
        assert preloaded == [m for m in MODULES if m != "app.js"]  # no module waits its turn
        for name in MODULES:
            module = await client.get(f"/ui/js/{name}")
            assert module.status_code == 200
            assert module.headers["content-type"].startswith("text/javascript")
        assert (await client.get("/ui/console.css")).headers["content-type"].startswith("text/css")


@pytest.mark.parametrize("path", ["/ui/kinds/devices", "/ui/kinds/devices/web-01/edit",
                                  "/ui/kinds/devices/dev-1a2b3c4d"])
async def test_a_deep_link_path_gets_the_page(tmp_path: Path, path: str) -> None:
    async with make_client(tmp_path) as client:
        response = await client.get(path)
        assert response.status_code == 200
        assert response.text == (CONSOLE / "index.html").read_text()


async def test_a_missing_asset_is_404_not_the_page(tmp_path: Path) -> None:
    async with make_client(tmp_path) as client:
        assert (await client.get("/ui/js/nothing.js")).status_code == 404
        assert (await client.get("/ui/nothing.css")).status_code == 404


def test_the_console_asks_nothing_of_any_other_host() -> None:
    """No CDN, no font or script from the internet: the only URLs are the service's own."""
    for path in CONSOLE.rglob("*"):
        if path.is_file():
            found = re.findall(r"""(?:https?:)?//[a-z0-9.-]+\.[a-z]{2,}""", path.read_text())
            assert found == [], (path, found)
