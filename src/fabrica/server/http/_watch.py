"""``GET /PLURAL?watch=true``: the watch stream of SPEC section 8, over the store's
`WatchCache`.

Newline-delimited JSON, one Kubernetes watch event per line, ``application/x-ndjson``:
``{"type": "ADDED"|"MODIFIED"|"DELETED"|"BOOKMARK"|"ERROR", "object": ...}``, objects in the
API version the request negotiated (``Accept: application/json;version=V``).

Parameters, as Kubernetes names them: ``resourceVersion`` (every change after it; without
it, every current match as ADDED first), ``labelSelector``, ``allowWatchBookmarks=true``
(a BOOKMARK carrying only ``metadata.resourceVersion`` every `bookmark_interval` seconds:
everything up to it has been sent, so a filtered watch resumes from there without a
replay), ``timeoutSeconds`` (the stream ends after that long; 0 or none: when the client,
the server or a 410 ends it). They are checked on plain lists too (and ignored there), so a
malformed value is a 400 either way.

A stream sends at most one chunk per `flush_interval` seconds, holding what arrived
meanwhile, so hundreds of watchers under a stream of writes cost per chunk, not per event.
The response (`StreamResponse`) watches the connection itself: a client that leaves ends its
watch at once, not at the next event, and `WatchStreams.close` (server shutdown) ends every
stream, since a server waits for open responses before it stops; a stream whose client
reads nothing is cut rather than waited for.
"""

from __future__ import annotations

import asyncio
import logging
import re
from collections.abc import AsyncIterator

from starlette.datastructures import QueryParams

from ...store import Watcher, error_line
from ._errors import APIError
from ._streaming import StreamResponse

__all__ = ["WATCH_MEDIA_TYPE", "WatchParams", "WatchStreams", "parse_watch_params"]

log = logging.getLogger("fabrica.server")

WATCH_MEDIA_TYPE = "application/x-ndjson"
RESOURCE_VERSION_PATTERN = r"^([0-9]{1,19})?$"
MAX_TIMEOUT_SECONDS = 2**31 - 1
_RESOURCE_VERSION = re.compile(RESOURCE_VERSION_PATTERN)
_BOOLEANS = {"true": True, "false": False}


class WatchParams:
    """The watch parameters of a ``GET /PLURAL``."""

    __slots__ = ("bookmarks", "resource_version", "timeout", "watch")

    def __init__(self, watch: bool, resource_version: int | None, bookmarks: bool,
                 timeout: float | None) -> None:
        self.watch = watch
        self.resource_version = resource_version
        self.bookmarks = bookmarks
        self.timeout = timeout


def parse_watch_params(query: QueryParams) -> WatchParams:
    """The watch parameters; a 400 for a malformed one."""
    rv_text = query.get("resourceVersion")
    if rv_text is not None and not _RESOURCE_VERSION.match(rv_text):
        raise _bad("resourceVersion", "a resourceVersion this server issued (digits)")
    timeout_text = query.get("timeoutSeconds")
    timeout = None
    if timeout_text is not None:
        if not (timeout_text.isascii() and timeout_text.isdigit()) or \
                len(timeout_text) > 18 or int(timeout_text) > MAX_TIMEOUT_SECONDS:
            raise _bad("timeoutSeconds", f"an integer from 0 to {MAX_TIMEOUT_SECONDS}")
        timeout = float(timeout_text) or None
    return WatchParams(watch=_boolean(query, "watch"),
                       resource_version=int(rv_text) if rv_text else None,
                       bookmarks=_boolean(query, "allowWatchBookmarks"), timeout=timeout)


def _boolean(query: QueryParams, name: str) -> bool:
    value = query.get(name)
    if value is None:
        return False
    if value not in _BOOLEANS:
        raise _bad(name, "true or false")
    return _BOOLEANS[value]


def _bad(field: str, wanted: str) -> APIError:
    return APIError(400, f"invalid {field}: expected {wanted}",
                    [{"field": field, "message": f"expected {wanted}"}])


class WatchStreams:
    """The open watch streams of a server, so shutdown can end them."""

    def __init__(self, *, bookmark_interval: float = 30.0, flush_interval: float = 0.05
                 ) -> None:
        self.bookmark_interval = bookmark_interval
        self.flush_interval = flush_interval
        self._open: set[Watcher] = set()
        self.closed = False

    def response(self, watcher: Watcher, params: WatchParams, headers: dict[str, str]
                 ) -> StreamResponse:
        headers = {**headers, "Content-Type": WATCH_MEDIA_TYPE, "Cache-Control": "no-cache"}
        return StreamResponse(self._lines(watcher, params), headers, watcher.stopped,
                              on_error=_error_line)

    async def _lines(self, watcher: Watcher, params: WatchParams) -> AsyncIterator[bytes]:
        loop = asyncio.get_running_loop()
        now = loop.time()
        deadline = now + params.timeout if params.timeout else None
        bookmark_at = now + self.bookmark_interval if params.bookmarks else None
        self._open.add(watcher)
        if self.closed:
            watcher.close()
        try:
            while True:
                wait = _soonest(deadline, bookmark_at, loop.time())
                lines = await watcher.next(wait)
                if lines is None:
                    return
                if lines:
                    yield b"".join(lines)
                now = loop.time()
                if bookmark_at is not None and now >= bookmark_at and watcher.settled:
                    yield watcher.bookmark()
                    bookmark_at = now + self.bookmark_interval
                if deadline is not None and now >= deadline:
                    return
                if lines and watcher.settled:  # (its start goes out without a pause)
                    await asyncio.sleep(self.flush_interval)
        finally:
            self._open.discard(watcher)
            watcher.close()

    def close(self) -> None:
        """End every open watch stream (server shutdown)."""
        self.closed = True
        for watcher in list(self._open):
            watcher.close()


def _error_line(exc: Exception) -> bytes:
    """Storage failed mid-stream: say so, as the last event."""
    return error_line(500, "InternalError", f"the watch failed: {exc}")


def _soonest(deadline: float | None, bookmark_at: float | None, now: float) -> float | None:
    times = [t for t in (deadline, bookmark_at) if t is not None]
    return max(0.0, min(times) - now) if times else None
