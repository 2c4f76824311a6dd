"""The memory one request may take, measured on a generated server in a process of its own.

Every request of tests/_support/hostile.py (patches that double or nest the document,
exponent bombs, bodies at and past the limit, long query strings) is sent to a `fabrica
generate`d server running with the default ``--max-body-size`` (1 MiB), SQLite or file
storage, events on. Before each, the kernel's peak-RSS mark of the server is reset
(``/proc/PID/clear_refs``); after it, the peak (``VmHWM``) may be at most `BOUND_MIB` above
what the process held before the request (``VmRSS``). That is the bound the generated README
states ("Limits"); the figures are printed (``pytest -s``).

Before the bounds, one of these requests (17 JSON patch copies) added 30 MB to a server, and
14 copies of a larger list took one past 20 GB.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import httpx
import pytest

from fabrica.server import DEFAULT_MAX_BODY_SIZE
from tests._support.e2e import Server, fabrica
from tests._support.hostile import BLOB_SOURCE, SETUP, TARGETS, cases

pytestmark = pytest.mark.e2e

#: The most one request may raise the server's peak RSS above what it held before:
#: 160 times the body limit (160 MiB with the default 1 MiB), as the generated README
#: states. The worst requests are writes of a megabyte of empty objects, the most Python
#: objects per byte of JSON (about 25 MB per copy, and a write holds four or five: the
#: parsed body, the validated model, the stored and the published document); measured
#: about 120 MiB. Hostile patches, bombs and query strings stay under 30 MiB.
BOUND_MIB = 160 * DEFAULT_MAX_BODY_SIZE // (1024 * 1024)


@pytest.fixture(scope="module")
def project(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("hostile")
    fabrica("init", "blob-api", "--events", cwd=root)
    project = root / "blob-api"
    fabrica("add", "resource", "Blob", "--prefix", "blob", cwd=project)
    (project / "blob_api/resources/blob.py").write_text(BLOB_SOURCE)
    fabrica("generate", cwd=project)
    return project


def _memory_kib(pid: int) -> dict[str, int]:
    found = {}
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            name, _, value = line.partition(":")
            if name in ("VmRSS", "VmHWM"):
                found[name] = int(value.split()[0])
    return found


def _reset_peak(pid: int) -> None:
    with open(f"/proc/{pid}/clear_refs", "w") as clear:
        clear.write("5")  # VmHWM := VmRSS (Linux, proc(5))


@pytest.mark.parametrize("storage", ["file", "sqlite"])
async def test_no_request_takes_more_than_the_stated_memory(project: Path, tmp_path: Path,
                                                            storage: str) -> None:
    options = ["--data-dir", str(tmp_path / "data")]
    if storage == "sqlite":  # a given URL wins over the project's file storage
        options += ["--database-url", f"sqlite:///{tmp_path}/blobs.db"]
    server = Server(project, "blob_api", *options)
    pid = server.process.pid
    figures = []
    try:
        async with httpx.AsyncClient(base_url=server.url, timeout=120) as client:
            for method, path, body in SETUP:
                response = await client.request(method, path, content=body(),
                                                headers={"content-type": "application/json"})
                assert response.status_code in (200, 201), response.text
            before = [(await client.get(path)).json() for path in TARGETS]
            for case in cases():
                content = case.content()
                rss = _memory_kib(pid)["VmRSS"]
                _reset_peak(pid)
                response = await client.request(case.method, case.path, content=content,
                                                headers=case.request_headers())
                peak = _memory_kib(pid)["VmHWM"]
                figures.append(((peak - rss) / 1024, rss / 1024, case.name))
                assert response.status_code in case.expect, (case.name, response.status_code,
                                                             response.text[:300])
            assert [(await client.get(path)).json() for path in TARGETS] == before
    finally:
        server.stop()
        if storage == "file":
            shutil.rmtree(tmp_path / "data", ignore_errors=True)
    print(f"\npeak RSS above the RSS before each request, {storage} (MiB); bound {BOUND_MIB}")
    for growth, rss, name in sorted(figures, reverse=True):
        print(f"{growth:8.1f}  (from {rss:6.1f})  {name}")
    worst = max(figures)
    assert worst[0] <= BOUND_MIB, worst
