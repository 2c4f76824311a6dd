"""In-process cost of a cached GET (and list100): the app called as ASGI, no sockets.

Serves the SPEC's Device (file backend, a temp data dir) with `create_app`, creates 100
devices, lets the watch cache fill, then calls the app directly with hand-made ASGI scopes
in a tight loop and prints microseconds per request: what fabrica itself spends on a read
(routing, negotiation, the consistency check, ETag, metrics, the response), without the
HTTP server and the network that `http_crud.py` measures around it.

    .venv/bin/python bench/asgi_get.py [--requests N] [--profile] [--accept V]

``--profile`` runs the get loop under cProfile and prints the top functions by own time.
``--accept v1`` sends ``Accept: application/json;version=v1`` (the SPEC's Device serves
only v1, so this exercises negotiation, not conversion).
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import json
import pstats
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


async def main(args: argparse.Namespace) -> None:
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
              n: int | None = None) -> None:
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


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=20_000)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--profile", action="store_true")
    parser.add_argument("--top", type=int, default=30)
    parser.add_argument("--accept", default="")
    asyncio.run(main(parser.parse_args()))
