"""Other tools against a generated service running as a subprocess: schemathesis fuzzes it
from its own /openapi.json, and a headless Chromium drives its Swagger UI at /docs."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests._support.cdp import Browser, chromium
from tests._support.e2e import Server, fabrica, make_api_project
from tests._support.sqldb import postgres_schema

pytestmark = pytest.mark.e2e

@pytest.fixture(scope="module")
def project(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_api_project(tmp_path_factory.mktemp("contract"))


@pytest.fixture(scope="module")
def server(project: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    srv = Server(project, "api_svc", "--data-dir", str(tmp_path_factory.mktemp("data")))
    yield srv
    srv.stop()


EVERY_CASE_PASSED = re.compile(r"(\d+) generated, \1 passed")


def schemathesis(server: Server, project: Path, *options: str) -> str:
    """Run schemathesis with every check on the server's own /openapi.json, from the project
    directory (so with the project's schemathesis.toml); its report, if it found nothing."""
    command = [sys.executable, "-m", "schemathesis.cli", "run", f"{server.url}/openapi.json",
               "--checks", "all", "--seed", "20240601", "--generation-database", "none",
               "--request-timeout", "10", "--no-color", *options]
    done = subprocess.run(command, cwd=project, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, f"{done.stdout[-8000:]}\n{done.stderr[-2000:]}"
    assert "Traceback" not in server.output()
    return done.stdout


def test_schemathesis_all_checks_find_nothing_on_files(server: Server, project: Path) -> None:
    """Coverage, fuzzing and stateful phases, every check: zero failures. The budget of
    examples keeps the run to about a minute."""
    report = schemathesis(server, project, "--max-examples", "5")
    assert "Tested: 23" in report and EVERY_CASE_PASSED.search(report), report[-3000:]


def test_schemathesis_all_checks_find_nothing_on_postgresql(project: Path) -> None:
    with postgres_schema() as url:  # an empty database: the server creates the schema
        srv = Server(project, "api_svc", "--database-url", url)
        try:
            report = schemathesis(srv, project, "--max-examples", "3")
        finally:
            srv.stop()
    assert "Tested: 23" in report and EVERY_CASE_PASSED.search(report), report[-3000:]


def test_schemathesis_writes_in_warn_mode(project: Path, tmp_path: Path) -> None:
    """Validation mode warn names each unknown field in a Warning header: whatever a client
    calls its fields, that header must still be sent. (Warn mode ignores unknown fields, so
    the schema's promise of additionalProperties: false is strict mode's only: the checks
    here are the ones about what the server answers.)"""
    warn = tmp_path / "warn-svc"
    shutil.copytree(project, warn, ignore=shutil.ignore_patterns("*.log", "__pycache__"))
    config = warn / ".fabrica.yaml"
    config.write_text(config.read_text().replace("mode: strict", "mode: warn"))
    fabrica("generate", cwd=warn)
    srv = Server(warn, "api_svc", "--data-dir", str(tmp_path / "data"))
    try:
        command = [sys.executable, "-m", "schemathesis.cli", "run", f"{srv.url}/openapi.json",
                   "--checks", "not_a_server_error,status_code_conformance,"
                   "content_type_conformance,response_headers_conformance,"
                   "response_schema_conformance", "--seed", "20240601",
                   "--generation-database", "none", "--request-timeout", "10", "--no-color",
                   "--max-examples", "10", "--phases", "coverage,fuzzing",
                   "--include-method", "POST", "--include-method", "PUT",
                   "--include-method", "PATCH"]
        done = subprocess.run(command, cwd=warn, capture_output=True, text=True, timeout=300)
        assert done.returncode == 0, f"{done.stdout[-6000:]}\n{done.stderr[-2000:]}"
        assert "Traceback" not in srv.output()
    finally:
        srv.stop()
    assert "Tested: 10" in done.stdout, done.stdout[-3000:]


# --- Swagger UI in a real browser ----------------------------------------------------------

def operation(method: str, path: str) -> str:
    """JavaScript: the Swagger UI block of one operation."""
    return ("[...document.querySelectorAll('.opblock')].find(e => "
            f"e.querySelector('.opblock-summary-method').textContent === {json.dumps(method)} "
            "&& e.querySelector('.opblock-summary-path').getAttribute('data-path') === "
            f"{json.dumps(path)})")


@pytest.fixture
def browser(tmp_path: Path) -> Iterator[Browser]:
    if chromium() is None:
        pytest.skip("chromium is not installed (apt-get install chromium; .ci/run does)")
    b = Browser(tmp_path / "profile")
    yield b
    b.close()


def test_swagger_ui_lists_every_operation_and_runs_a_get_offline(
    server: Server, browser: Browser
) -> None:
    created = httpx.post(f"{server.url}/devices",
                         json={"name": "ui-01", "type": "server", "ipAddress": "10.0.0.9"})
    assert created.status_code == 201, created.text
    doc = httpx.get(f"{server.url}/openapi.json").json()
    documented = sorted([method.upper(), path] for path, item in doc["paths"].items()
                        for method in item if method != "parameters")

    page = browser.new_page()
    page.goto(f"{server.url}/docs")
    page.wait_for("document.querySelectorAll('.opblock').length > 0")
    listed = page.evaluate(
        "[...document.querySelectorAll('.opblock')].map(e => ["
        "e.querySelector('.opblock-summary-method').textContent, "
        "e.querySelector('.opblock-summary-path').getAttribute('data-path')])")
    assert sorted(listed) == documented
    for kind in ("devices", "configs"):
        assert {m for m, p in listed if p.startswith(f"/{kind}")} == {
            "GET", "POST", "PUT", "PATCH", "DELETE"}

    op = operation("GET", "/devices")
    page.evaluate(f"{op}.querySelector('.opblock-summary-control').click()")
    page.wait_for(f"!!{op}.querySelector('.try-out__btn')")
    page.evaluate(f"{op}.querySelector('.try-out__btn').click()")
    page.wait_for(f"!!{op}.querySelector('button.execute')")
    page.evaluate(f"{op}.querySelector('button.execute').click()")
    status = page.wait_for(
        f"({op}.querySelector('.live-responses-table tbody .response-col_status') || {{}})"
        ".textContent")
    assert status.strip() == "200"
    body = page.evaluate(f"{op}.querySelector('.live-responses-table tbody').textContent")
    assert '"ui-01"' in body

    # Offline: everything the page loaded came from the service itself, and no validator
    # badge calls out when the service is reached by another name than localhost.
    assert page.evaluate("window.ui.getConfigs().validatorUrl") is None
    external = [url for url in page.requested_urls()
                if not url.startswith((server.url, "data:", "blob:"))]
    assert external == []
