"""A scripted server that speaks the watch wire format (SPEC section 8) exactly, and does at
the test's word what a real server does only now and then: cut every open watch, end them
cleanly, forget old versions (so a resume gets ``ERROR`` 410), send a bookmark, refuse the
next watches with a 503, go back to an older state (a restore: a resume from a version it
never reached gets ERROR 504, "too large resource version").

It serves one kind, the SPEC's Device, on ``/devices``: ``GET`` lists (with
``X-Resource-Version`` and ``labelSelector``) or, with ``watch=true``, streams newline-delimited
events from ``resourceVersion``. The test changes the data through Python (`create`,
`update`, `delete`) and the server is real uvicorn on a socket, in a thread, so the clients
under test meet real HTTP: chunked streams, broken connections, reconnects.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import threading
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from typing import Any

import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route

from fabrica.resource import parse_selector

from .app import Device, DeviceSpec, DeviceStatus
from .wait import eventually_sync

_CUT, _END = object(), object()  # what a watcher's queue may carry besides events


@dataclass
class _Watcher:
    queue: asyncio.Queue[Any]
    loop: asyncio.AbstractEventLoop
    selector: Any
    bookmarks: bool


@dataclass
class WatchServer:
    """The scripted server; use as a context manager: ``with WatchServer() as server``."""

    objects: dict[str, dict[str, Any]] = field(default_factory=dict)
    log: list[tuple[int, str, dict[str, Any]]] = field(default_factory=list)
    version: int = 100
    oldest: int = 0  # a watch from a version below this gets ERROR 410
    refuse: int = 0  # the next `refuse` watch requests answer 503
    requests: list[dict[str, Any]] = field(default_factory=list)  # each watch's query+headers
    lists: int = 0  # how many plain lists were served
    paused: bool = False  # new watch requests wait (see `pause`)
    _watchers: list[_Watcher] = field(default_factory=list)
    _lock: threading.Condition = field(default_factory=threading.Condition)
    _ids: Iterator[int] = field(default_factory=lambda: itertools.count(0x10000000))

    # ---- the test's controls (any thread) --------------------------------------------------

    def create(self, name: str, labels: dict[str, str] | None = None) -> dict[str, Any]:
        obj = Device(metadata={"name": name, "uid": f"dev-{next(self._ids):08x}",
                               "labels": labels or {}},
                     spec=DeviceSpec(type="server", ip_address="10.0.0.1"),
                     status=DeviceStatus()).model_dump(mode="json", by_alias=True)
        return self._write("ADDED", obj)

    def update(self, name: str, port: int) -> dict[str, Any]:
        obj = self._named(name)
        obj = {**obj, "spec": {**obj["spec"], "port": port}}
        return self._write("MODIFIED", obj)

    def delete(self, name: str) -> dict[str, Any]:
        return self._write("DELETED", self._named(name))

    def restore(self, version: int, keep: list[str]) -> None:
        """Go back to `version` holding only the resources named in `keep`, as a server
        restored from an older backup: versions above it were never issued here."""
        with self._lock:
            self.objects = {uid: o for uid, o in self.objects.items()
                            if o["metadata"]["name"] in keep}
            self.version = self.oldest = version
            self.log.clear()

    def pause(self) -> None:
        """Hold new watch requests (recorded, not yet answered) until `resume`: what happens
        meanwhile happens while the client is disconnected."""
        self.paused = True

    def resume(self) -> None:
        self.paused = False

    def forget_history(self) -> None:
        """Keep no change before now: resuming from any earlier version gets 410."""
        with self._lock:
            self.oldest = self.version
            self.log.clear()

    def cut(self) -> None:
        """Break every open watch connection mid-stream (no final chunk)."""
        self._tell_all(_CUT)

    def end(self) -> None:
        """End every open watch cleanly, as a server does at its timeoutSeconds."""
        self._tell_all(_END)

    def bookmark(self) -> None:
        """Send every watcher that allows bookmarks one, at the current version."""
        with self._lock:
            mark = {"kind": "Device", "apiVersion": "v1",
                    "metadata": {"resourceVersion": str(self.version)}}
            self._tell_all({"type": "BOOKMARK", "object": mark}, only_bookmarks=True)

    def wait_watches(self, count: int, timeout: float = 10) -> None:
        """Wait until `count` watch requests in all have arrived."""
        with self._lock:
            assert self._lock.wait_for(lambda: len(self.requests) >= count, timeout), \
                f"{len(self.requests)} watch requests, expected {count}"

    def wait_watching(self, count: int = 1, timeout: float = 10) -> None:
        """Wait until `count` watches are open right now (and receiving events)."""
        with self._lock:
            assert self._lock.wait_for(lambda: len(self._watchers) >= count, timeout), \
                f"{len(self._watchers)} open watches, expected {count}"

    # ---- the HTTP side ---------------------------------------------------------------------

    def app(self) -> Starlette:
        return Starlette(routes=[Route("/devices", self._devices)])

    async def _devices(self, request: Request) -> Response:
        query = request.query_params
        selector = parse_selector(query.get("labelSelector"))
        if query.get("watch") != "true":
            with self._lock:
                items = [o for o in self.objects.values() if _matches(selector, o)]
                version = str(self.version)
                self.lists += 1
            return JSONResponse(items, headers={"X-Resource-Version": version})
        with self._lock:
            self.requests.append({**query, "authorization": request.headers.get("authorization"),
                                  "accept": request.headers.get("accept")})
            self._lock.notify_all()
            if self.refuse:
                self.refuse -= 1
                return JSONResponse({"error": "try later", "code": 503}, status_code=503)
        while self.paused:
            await asyncio.sleep(0.005)
        since = query.get("resourceVersion")
        if since is not None and int(since) > self.version:
            status = {"kind": "Status", "code": 504, "reason": "Timeout",
                      "message": f"too large resource version: {since}, current: "
                                 f"{self.version}", "details": {"retryAfterSeconds": 1}}
            return Response(json.dumps({"type": "ERROR", "object": status}) + "\n",
                            media_type="application/x-ndjson")
        return StreamingResponse(self._stream(query.get("resourceVersion"), selector,
                                              query.get("allowWatchBookmarks") == "true"),
                                 media_type="application/json")

    async def _stream(self, since: str | None, selector: Any, bookmarks: bool
                      ) -> AsyncIterator[bytes]:
        watcher = _Watcher(asyncio.Queue(), asyncio.get_running_loop(), selector, bookmarks)
        with self._lock:  # the backlog and the live events meet without a gap
            first = self._backlog(since, selector)
            self._watchers.append(watcher)
            self._lock.notify_all()
        try:
            for event in first:
                yield _line(event)
            while True:
                item = await watcher.queue.get()
                if item is _CUT:
                    raise ConnectionAbortedError("cut by the test")
                if item is _END or (isinstance(item, dict) and item["type"] == "ERROR"):
                    if item is not _END:
                        yield _line(item)
                    return
                yield _line(item)
        finally:
            with self._lock:
                self._watchers.remove(watcher)

    def _backlog(self, since: str | None, selector: Any) -> list[dict[str, Any]]:
        if since is None:
            return [{"type": "ADDED", "object": o} for o in self.objects.values()
                    if _matches(selector, o)]
        if int(since) < self.oldest:
            return [{"type": "ERROR", "object": {"kind": "Status", "code": 410,
                                                 "reason": "Expired",
                                                 "message": f"too old resource version: "
                                                            f"{since} ({self.oldest})"}}]
        return [{"type": t, "object": o} for v, t, o in self.log
                if v > int(since) and _matches(selector, o)]

    # ---- bookkeeping -----------------------------------------------------------------------

    def _named(self, name: str) -> dict[str, Any]:
        with self._lock:
            return next(o for o in self.objects.values() if o["metadata"]["name"] == name)

    def _write(self, kind: str, obj: dict[str, Any]) -> dict[str, Any]:
        obj = json.loads(json.dumps(obj))  # each version its own object
        with self._lock:
            self.version += 1
            obj["metadata"]["resourceVersion"] = str(self.version)
            uid = obj["metadata"]["uid"]
            if kind == "DELETED":
                self.objects.pop(uid)
            else:
                self.objects[uid] = obj
            self.log.append((self.version, kind, obj))
            for watcher in self._watchers:
                if _matches(watcher.selector, obj):
                    self._put(watcher, {"type": kind, "object": obj})
        return obj

    def _tell_all(self, item: Any, only_bookmarks: bool = False) -> None:
        with self._lock:
            for watcher in self._watchers:
                if watcher.bookmarks or not only_bookmarks:
                    self._put(watcher, item)

    def _put(self, watcher: _Watcher, item: Any) -> None:
        watcher.loop.call_soon_threadsafe(watcher.queue.put_nowait, item)

    # ---- running ---------------------------------------------------------------------------

    def __enter__(self) -> WatchServer:
        config = uvicorn.Config(self.app(), host="127.0.0.1", port=0, log_level="critical",
                                loop="asyncio", http="h11", ws="none", lifespan="off",
                                timeout_graceful_shutdown=1)
        self._server = uvicorn.Server(config)
        self._thread = threading.Thread(target=self._server.run, daemon=True)
        self._thread.start()
        eventually_sync(lambda: self._server.started, timeout=5, interval=0.005)
        port = self._server.servers[0].sockets[0].getsockname()[1]
        self.url = f"http://127.0.0.1:{port}"
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.end()
        self._server.should_exit = True
        self._thread.join(5)


def _matches(selector: Any, obj: dict[str, Any]) -> bool:
    return bool(selector.matches(obj["metadata"].get("labels") or {}))


def _line(event: dict[str, Any]) -> bytes:
    return json.dumps(event, separators=(",", ":")).encode() + b"\n"
