"""The openapi.json `fabrica generate` writes is the document the generated server serves."""

from __future__ import annotations

import json
from pathlib import Path

import httpx
import pytest
from openapi_spec_validator import validate

from tests._support.e2e import Server, fabrica, make_api_project

# --- the file `fabrica generate` writes --------------------------------------------------

@pytest.mark.e2e
def test_generate_writes_the_served_openapi_json(tmp_path: Path) -> None:
    project = make_api_project(tmp_path)
    path = project / "openapi.json"
    written = path.read_bytes()
    doc = json.loads(written)
    validate(doc)
    assert {"/devices/{id}/status", "/configs/{id}/versions/{versionId}", "/events"} <= set(
        doc["paths"])
    fabrica("generate", cwd=project)
    assert path.read_bytes() == written  # deterministic: generate twice, same bytes
    server = Server(project, "api_svc", "--data-dir", str(tmp_path / "data"))
    try:
        assert httpx.get(f"{server.url}/openapi.json").json() == doc
    finally:
        server.stop()
    path.write_text("{}")
    assert "updated   openapi.json" in fabrica("generate", cwd=project).stdout
    assert path.read_bytes() == written
