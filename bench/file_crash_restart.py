"""The first read after a kill -9 with writes in flight, on the file backend.

A generated Device service (the real CLI, as http_crud.py builds it) on a fresh data dir:
one device is created, then N creates are sent at once (default 32) while this process
holds every name lock of ``devices`` (the files under ``data/devices/.locks/n*``), so each
create takes its revision and stops there, its change not yet written. The server is killed
with SIGKILL, the locks let go, the server started again on the same data dir, and the clock
runs from its first request on: ``GET /devices``, as the first client after a restart
sends it. Printed: holes left, the time of that first list, the time until a list answers
past every hole (its ``X-Resource-Version`` reaches the counter: lists poll until then),
the version the first list answered with, and what the restarted server logged about the
holes (a dead writer found by its lock, or a hole given up after the wait).

    .venv/bin/python bench/file_crash_restart.py [--in-flight 32] [--rounds 1]

Each dead writer's hole used to be waited for 3 s (``change_wait``), one after another;
now a reader asks the kernel whether the hole's writer still holds its lock.
"""

from __future__ import annotations

import argparse
import http.client
import signal
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import DEVICE_SPEC, request  # noqa: E402
from http_crud import fabrica_server, make_project  # noqa: E402

from fabrica.storage.file._changes import read_counter  # noqa: E402
from fabrica.storage.file._io import flock  # noqa: E402

STRIPES = 64


def one_round(project: Path, work: Path, in_flight: int) -> dict[str, object]:
    data = work / "data"
    directory = data / "devices"
    server = fabrica_server(project, data, work, name="killed")
    with server:
        status, _ = request(server.port, "POST", "/devices", {"name": "first", **DEVICE_SPEC})
        assert status == 201, status
        start = read_counter(directory)
        with ExitStack() as locks, ThreadPoolExecutor(in_flight) as pool:
            for stripe in range(STRIPES):
                locks.enter_context(flock(directory / ".locks" / f"n{stripe:02d}"))
            for n in range(in_flight):
                pool.submit(request, server.port, "POST", "/devices",
                            {"name": f"in-flight-{n}", **DEVICE_SPEC}, 60.0)
            deadline = time.monotonic() + 60
            while read_counter(directory) < start + in_flight:
                if time.monotonic() > deadline:
                    raise RuntimeError(f"only {read_counter(directory) - start} creates in "
                                       f"flight")
                time.sleep(0.01)
            assert server.proc is not None
            server.proc.send_signal(signal.SIGKILL)
            server.proc.wait(30)
    counter = read_counter(directory)
    restarted = fabrica_server(project, data, work, name="restarted")
    with restarted:
        began = time.perf_counter()
        status, first = _list(restarted.port)
        seconds = time.perf_counter() - began
        version = first
        while status == 200 and int(version or 0) < counter:  # reads are past the holes
            status, version = _list(restarted.port)
        past = time.perf_counter() - began
        log = restarted.log_path.read_text(errors="replace")
    assert status == 200, status
    return {"holes": counter - start, "seconds": seconds, "past": past, "counter": counter,
            "listed_at": first, "gone": log.count("its writer is gone"),
            "timed_out": log.count("never appeared")}


def _list(port: int) -> tuple[int, str | None]:
    """``GET /devices``: its status and ``X-Resource-Version``."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=600)
    try:
        conn.request("GET", "/devices")
        response = conn.getresponse()
        response.read()
        return response.status, response.getheader("X-Resource-Version")
    finally:
        conn.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--in-flight", type=int, default=32)
    parser.add_argument("--rounds", type=int, default=1)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="fabrica-crash-") as tmp:
        project = make_project(Path(tmp) / "project")
        print(f"{args.in_flight} creates in flight at kill -9; first GET /devices after the "
              f"restart", flush=True)
        print(f"{'round':>5} {'holes':>6} {'first list s':>13} {'past holes s':>13} "
              f"{'counter':>8} {'listed at':>10} {'logged gone':>12} {'timed out':>10}")
        for round in range(args.rounds):
            work = Path(tmp) / f"round{round}"
            work.mkdir()
            got = one_round(project, work, args.in_flight)
            print(f"{round + 1:>5} {got['holes']:>6} {got['seconds']:>13.3f} "
                  f"{got['past']:>13.3f} {got['counter']:>8} {got['listed_at']!s:>10} "
                  f"{got['gone']:>12} {got['timed_out']:>10}", flush=True)


if __name__ == "__main__":
    main()
