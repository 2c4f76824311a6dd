"""`probe_app`: what a ``--role controller`` process serves (SPEC section 6): ``/health``,
``/ready`` and ``/metrics``, nothing else.

A plain ASGI callable over the `Service`, without Starlette's routing, middleware stack or
exception handlers: three fixed paths need none of them. Its lifespan starts and stops the
service. The answers are those of the API process: the same bodies, headers and request
metrics (``fabrica_http_requests_total{kind,verb,code}``), and the same error bodies for any
other path (404) or method (405).
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from starlette.types import ASGIApp, Receive, Scope, Send

from ...service import Service
from ..http._observe import HTTPMetrics

__all__ = ["probe_app"]

#: A probe's answer: status, body, content type, extra headers.
Answer = tuple[int, bytes, str, dict[str, str]]
_JSON = "application/json"
_METHODS = ("GET", "HEAD")


def probe_app(service: Service) -> ASGIApp:
    """The ASGI app of a process that serves no API: `service`'s probes and metrics."""
    return HTTPMetrics(_Probes(service), registry=service.registry)


@dataclass(frozen=True)
class _Route:
    """What `HTTPMetrics` labels a request by (Starlette's router sets its `Route` there)."""

    path: str


class _Probes:
    def __init__(self, service: Service) -> None:
        self.service = service
        self.routes: dict[str, Callable[[], Awaitable[Answer]]] = {
            "/health": self._health, "/ready": self._ready, "/metrics": self._metrics}

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            await self._lifespan(receive, send)
        elif scope["type"] == "http":
            await self._respond(scope, send, await self._answer(scope))

    async def _answer(self, scope: Scope) -> Answer:
        probe = self.routes.get(scope["path"])
        if probe is None:
            return _error(404, "Not Found")
        scope["route"] = _Route(scope["path"])
        if scope["method"] not in _METHODS:
            return _error(405, "Method Not Allowed", {"Allow": ", ".join(_METHODS)})
        return await probe()

    async def _health(self) -> Answer:
        return 200, _json(self.service.health()), _JSON, {}

    async def _ready(self) -> Answer:
        status, body = await self.service.readiness.report()
        return status, _json(body), _JSON, {"Cache-Control": "no-store"}

    async def _metrics(self) -> Answer:
        return 200, generate_latest(self.service.registry), CONTENT_TYPE_LATEST, {}

    async def _respond(self, scope: Scope, send: Send, answer: Answer) -> None:
        status, body, content_type, extra = answer
        headers = [(b"content-type", content_type.encode("latin-1")),
                   (b"content-length", str(len(body)).encode("latin-1"))]
        headers += [(k.lower().encode("latin-1"), v.encode("latin-1")) for k, v in extra.items()]
        await send({"type": "http.response.start", "status": status, "headers": headers})
        await send({"type": "http.response.body", "body": body})

    async def _lifespan(self, receive: Receive, send: Send) -> None:
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                try:
                    await self.service.start()
                except BaseException as exc:
                    await send({"type": "lifespan.startup.failed", "message": repr(exc)})
                    raise
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                await self.service.stop()
                await send({"type": "lifespan.shutdown.complete"})
                return


def _json(content: Any) -> bytes:
    """As Starlette's `JSONResponse` renders it, so both kinds of process answer alike."""
    return json.dumps(content, ensure_ascii=False, allow_nan=False, indent=None,
                      separators=(",", ":")).encode("utf-8")


def _error(status: int, message: str, headers: dict[str, str] | None = None) -> Answer:
    return status, _json({"error": message, "code": status}), _JSON, headers or {}
