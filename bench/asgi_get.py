"""In-process cost of a cached GET (and list100): the app called as ASGI, no sockets.

Serves the SPEC's Device (file backend, a temp data dir) with `create_app`, creates 100
devices, lets the watch cache fill, then calls the app directly with hand-made ASGI scopes
in a tight loop and prints microseconds per request: what fabrica itself spends on a read
(routing, negotiation, the consistency check, ETag, metrics, the response), without the
HTTP server and the network that `http_crud.py` measures around it.

    .venv/bin/python bench/asgi_get.py [--requests N] [--profile] [--accept V]

``--profile`` runs the get loop under cProfile and prints the top functions by own time.
``--observe`` measures what observability costs a cached get (SPEC section 13): the app
without the request metrics, with them (the default), and with tracing at ratio 1.0 and
an OTLP/HTTP exporter sending to a collector stand-in in another process; ratios to the
app without metrics. The three run side by side, alternating ``--chunk`` gets each for
``--rounds`` turns (a tracing turn ends with its spans exported); best and median turn.
``--accept v1`` sends ``Accept: application/json;version=v1`` (the SPEC's Device serves
only v1, so this exercises negotiation, not conversion).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import cProfile
import json
import pstats
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from fabrica import ServiceSettings  # noqa: E402
from fabrica.server import create_app  # noqa: E402
from fabrica.storage import FileStorage  # noqa: E402
from tests._support.app import Device  # noqa: E402


class Caller:
    """Calls an ASGI app with one request and collects the status and body."""

    def __init__(self, app: Any, headers: list[tuple[bytes, bytes]]) -> None:
        self.app = app
        self.headers = [(b"host", b"bench"), *headers]

    async def call(self, method: str, path: str, body: bytes = b"",
                   headers: list[tuple[bytes, bytes]] = ()) -> tuple[int, bytes]:  # type: ignore[assignment]
        scope = {"type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1",
                 "method": method, "scheme": "http", "path": path, "raw_path": path.encode(),
                 "query_string": b"", "root_path": "", "headers": [*self.headers, *headers],
                 "client": ("127.0.0.1", 1), "server": ("127.0.0.1", 80)}
        sent = False
        status = 0
        chunks: list[bytes] = []

        async def receive() -> dict[str, Any]:
            nonlocal sent
            if not sent:
                sent = True
                return {"type": "http.request", "body": body, "more_body": False}
            await asyncio.Event().wait()
            raise AssertionError

        async def send(message: dict[str, Any]) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            elif message["type"] == "http.response.body":
                chunks.append(message.get("body", b""))

        await self.app(scope, receive, send)
        return status, b"".join(chunks)


#: A collector stand-in: answers every OTLP/HTTP export 200 without decoding it, in its own
#: process so that its work is not counted as the service's CPU.
_SINK = """
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
class H(BaseHTTPRequestHandler):
    def do_POST(self):
        self.rfile.read(int(self.headers["Content-Length"]))
        self.send_response(200); self.send_header("Content-Length", "0"); self.end_headers()
    def log_message(self, *a): pass
s = ThreadingHTTPServer(("127.0.0.1", 0), H)
print(s.server_address[1], flush=True)
s.serve_forever()
"""


def _app(data: Path, variant: str, endpoint: str | None) -> Any:
    from fabrica.server.http._observe import HTTPMetrics
    from fabrica.service import Service, ServiceOptions

    settings = ServiceSettings(project="device-api", package="device_api")
    options = ServiceOptions(settings=settings,
                             otlp_endpoint=endpoint if variant == "tracing" else None)
    app = create_app(Service([Device], FileStorage(data), options))
    if variant == "bare":  # before the middleware stack is built (at the first call)
        app.request_metrics = None  # (in the outermost layer, FabricaApp)
        app.user_middleware = [m for m in app.user_middleware if m.cls is not HTTPMetrics]
    return app


async def observe(args: argparse.Namespace) -> None:
    sink = subprocess.Popen([sys.executable, "-c", _SINK], stdout=subprocess.PIPE, text=True)
    try:
        endpoint = f"http://127.0.0.1:{sink.stdout.readline().strip()}"  # type: ignore[union-attr]
        variants = ("bare", "metrics", "tracing")
        results: dict[str, list[float]] = {v: [] for v in variants}
        with tempfile.TemporaryDirectory() as tmp_dir:
            data = Path(tmp_dir) / "data"
            await _fill(data)
            async with contextlib.AsyncExitStack() as stack:
                callers, paths = {}, []
                for variant in variants:
                    app = _app(data, variant, endpoint)
                    await stack.enter_async_context(app.router.lifespan_context(app))
                    callers[variant] = Caller(app, [])
                    uids = await _uids(callers[variant])
                    paths = [f"/devices/{u}" for u in uids]
                tracing = callers["tracing"].app.state.service.tracing
                flush = tracing.provider.force_flush
                # Short chunks, the variants alternating, so that the machine's drift hits
                # all alike; a tracing chunk ends when its spans are exported (the export
                # thread's CPU is the process's), so each chunk pays for its own spans.
                for _ in range(args.rounds):
                    for variant in variants:
                        caller = callers[variant]
                        started = time.process_time()
                        for i in range(args.chunk):
                            status, _ = await caller.call("GET", paths[i % len(paths)])
                            if status != 200:
                                raise SystemExit(f"{variant}: status {status}")
                        if variant == "tracing":
                            flush()
                        results[variant].append((time.process_time() - started) / args.chunk)
        dropped = getattr(getattr(tracing, "pipeline", None), "dropped", "?")
        print(f"{args.rounds} rounds of {args.chunk} gets per app; spans dropped: {dropped}")
        for label, pick in (("best", min), ("median", statistics.median)):
            bare = pick(results["bare"])
            for variant, times in results.items():
                took = pick(times)
                print(f"{variant:8} {label:6} {took * 1e6:6.1f} us  ratio to bare "
                      f"{took / bare:5.2f}  throughput {bare / took:5.1%}")
        # Each turn against the bare turn of its own round (the same moment's machine).
        for variant, times in results.items():
            ratio = statistics.median(t / b for t, b in zip(times, results["bare"], strict=True))
            print(f"{variant:8} paired median ratio {ratio:5.2f}  throughput {1 / ratio:5.1%}")
    finally:
        sink.terminate()
        sink.wait()


async def _fill(data: Path) -> None:
    app = _app(data, "metrics", None)
    async with app.router.lifespan_context(app):
        writer = Caller(app, [(b"content-type", b"application/json")])
        for i in range(100):
            body = json.dumps({"metadata": {"name": f"dev-{i}"},
                               "spec": {"type": "server", "ipAddress": "10.0.0.1"}})
            status, _ = await writer.call("POST", "/devices", body.encode())
            assert status == 201


async def _uids(caller: Caller) -> list[str]:
    status, data = await caller.call("GET", "/devices")
    assert status == 200, status
    uids = [d["metadata"]["uid"] for d in json.loads(data)]
    for _ in range(50):  # until the cache is filled
        status, _ = await caller.call("GET", f"/devices/{uids[0]}")
        await asyncio.sleep(0.01)
    return uids


async def main(args: argparse.Namespace) -> None:
    if args.observe:
        await observe(args)
        return
    with tempfile.TemporaryDirectory() as tmp_dir:
        tmp = Path(tmp_dir)
        settings = ServiceSettings(project="device-api", package="device_api")
        headers: list[tuple[bytes, bytes]] = []
        if args.accept:
            headers.append((b"accept", f"application/json;version={args.accept}".encode()))
        app = create_app([Device], FileStorage(tmp / "data"), settings=settings)
        async with app.router.lifespan_context(app):
            writer = Caller(create_app([Device], FileStorage(tmp / "data"), settings=settings),
                            [(b"content-type", b"application/json")])
            uids = []
            for i in range(100):
                body = json.dumps({"metadata": {"name": f"dev-{i}"},
                                   "spec": {"type": "server", "ipAddress": "10.0.0.1"}})
                status, data = await writer.call("POST", "/devices", body.encode())
                assert status == 201, (status, data)
                uids.append(json.loads(data)["metadata"]["uid"])
            caller = Caller(app, headers)
            for _ in range(50):  # until the cache is filled
                status, data = await caller.call("GET", f"/devices/{uids[0]}")
                assert status == 200, (status, data)
                await asyncio.sleep(0.01)
            await run("get", caller, [f"/devices/{u}" for u in uids], args)
            await run("list100", caller, ["/devices"], args, n=args.requests // 10)


async def run(label: str, caller: Caller, paths: list[str], args: argparse.Namespace,
              n: int | None = None) -> float:
    n = n or args.requests
    profile = cProfile.Profile() if args.profile and label == "get" else None
    best = float("inf")
    for _ in range(args.repeat):
        if profile:
            profile.enable()
        started = time.process_time()
        for i in range(n):
            status, _ = await caller.call("GET", paths[i % len(paths)])
            if status != 200:
                raise SystemExit(f"{label}: status {status}")
        best = min(best, time.process_time() - started)
        if profile:
            profile.disable()
    print(f"{label:8} {best / n * 1e6:8.1f} us CPU/request (best of {args.repeat} x {n})")
    if profile:
        pstats.Stats(profile).sort_stats("tottime").print_stats(args.top)
    return best / n


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=20_000)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--profile", action="store_true")
    parser.add_argument("--top", type=int, default=30)
    parser.add_argument("--accept", default="")
    parser.add_argument("--observe", action="store_true")
    parser.add_argument("--rounds", type=int, default=30, help="--observe: alternations")
    parser.add_argument("--chunk", type=int, default=2048, help="--observe: gets per turn")
    asyncio.run(main(parser.parse_args()))
