"""The request metrics' exposition (SPEC section 13): `HTTPMetrics` keeps plain counts per
route and renders them, labelled, at a scrape; what it renders is checked against
prometheus_client's own `Counter` and `Histogram` fed the same requests."""

from __future__ import annotations

import itertools
import re
from dataclasses import dataclass
from typing import Any

import pytest
from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest

from fabrica import Model, Resource
from fabrica.server.http import _observe
from fabrica.server.http._observe import _BUCKETS, HTTPMetrics


class Rack(Resource[Model, Model], prefix="rack"):
    pass


@dataclass(frozen=True)
class Route:
    path: str


ITEM, LIST = Route("/racks/{id}"), Route("/racks")
#: method, route (None: no route matched), query, status, seconds; the labels expected.
REQUESTS = [
    ("GET", ITEM, b"", 200, 0.005, ("Rack", "get")),  # on a bound
    ("GET", ITEM, b"", 200, 0.0051, ("Rack", "get")),
    ("HEAD", ITEM, b"", 200, 0.2, ("Rack", "get")),
    ("GET", ITEM, b"", 404, 0.0004, ("Rack", "get")),
    ("GET", None, b"", 404, 11.0, ("", "get")),  # beyond the last bound
    ("BREW", None, b"", 405, 0.01, ("", "other")),
    ("TEAPOT", None, b"", 405, 0.01, ("", "other")),
    ("watch", ITEM, b"", 405, 0.01, ("", "other")),  # a method, not the watch key
    ("GET", LIST, b"", 200, 1, ("Rack", "list")),
    ("GET", LIST, b"watch=true", 200, 30.0, ("Rack", "watch")),
    ("GET", LIST, b"watch=false", 200, 0.02, ("Rack", "list")),
    ("GET", ITEM, b"watch=1", 200, 0.02, ("Rack", "get")),
    ("PUT", ITEM, b"", 200, 0.03, ("Rack", "update")),
]


def _samples(text: str, name: str) -> list[str]:
    """The samples named `name...`, sums rounded (added in another order, they differ in
    the last bits)."""
    found = []
    for line in text.splitlines():
        if line.startswith(name) and "_created" not in line:
            series, value = line.rsplit(" ", 1)
            found.append(f"{series} {round(float(value), 9)}")
    return sorted(found)


async def test_counts_and_histogram_render_as_prometheus_client_would(
        monkeypatch: pytest.MonkeyPatch) -> None:
    async def app(scope: Any, receive: Any, send: Any) -> None:
        request = REQUESTS[scope["index"]]
        if request[1] is not None:
            scope["route"] = request[1]
        await send({"type": "http.response.start", "status": request[3], "headers": []})

    async def send(message: Any) -> None:
        pass

    ours = CollectorRegistry()
    metrics = HTTPMetrics(app, registry=ours, kinds=[Rack.resource_info])
    theirs = CollectorRegistry()
    counter = Counter("fabrica_http_requests_total", "HTTP requests", ["kind", "verb", "code"],
                      registry=theirs)
    histogram = Histogram("fabrica_http_request_duration_seconds", "HTTP latency",
                          ["kind", "verb"], buckets=_BUCKETS, registry=theirs)
    # The middleware's clock: each request starts at 0 and ends at its seconds.
    clock = itertools.chain.from_iterable((0.0, r[4]) for r in REQUESTS)
    monkeypatch.setattr(_observe, "perf_counter", lambda: next(clock))
    for index, (method, _, query, code, seconds, (kind, verb)) in enumerate(REQUESTS):
        scope = {"type": "http", "method": method, "path": "/racks", "query_string": query,
                 "headers": [], "index": index}
        await metrics(scope, None, send)  # type: ignore[arg-type]
        counter.labels(kind, verb, str(code)).inc()
        histogram.labels(kind, verb).observe(seconds)
    monkeypatch.undo()
    got, want = generate_latest(ours).decode(), generate_latest(theirs).decode()
    for name in ("fabrica_http_requests_total", "fabrica_http_request_duration_seconds"):
        assert _samples(got, name) == _samples(want, name), name
    assert re.search(r'^fabrica_http_requests_created\{code="200",kind="Rack",verb="get"\} ',
                     got, re.M)
    assert "# TYPE fabrica_http_request_duration_seconds histogram" in got
    # Two unknown methods, one series: the keys stay bounded whatever the methods sent.
    # The same once the pending requests are folded into their series.
    metrics._fold()
    assert not metrics.pending
    folded = generate_latest(ours).decode()
    for name in ("fabrica_http_requests_total", "fabrica_http_request_duration_seconds"):
        assert _samples(folded, name) == _samples(want, name), name
    assert len([k for k in metrics.series if k[0] is None and k[2] == 405]) == 1


async def test_the_outermost_layer_answers_an_unhandled_error_and_counts_it() -> None:
    """`FabricaApp` folds the metrics into Starlette's error layer: the exception is still
    answered by the app's 500 handler (and raised on to the server), and counted."""
    import httpx
    from starlette.requests import Request
    from starlette.responses import JSONResponse, PlainTextResponse
    from starlette.routing import Route as StarletteRoute

    from fabrica.server.http._observe import FabricaApp, MeteredServerErrors

    async def broken(request: Request) -> PlainTextResponse:
        raise RuntimeError("boom")

    async def fine(request: Request) -> PlainTextResponse:
        return PlainTextResponse("ok")

    async def unexpected(request: Request, exc: Exception) -> JSONResponse:
        return JSONResponse({"reason": "InternalError"}, status_code=500)

    registry = CollectorRegistry()
    app = FabricaApp(routes=[StarletteRoute("/broken", broken), StarletteRoute("/fine", fine)],
                     exception_handlers={Exception: unexpected})
    app.request_metrics = HTTPMetrics(_unused, registry=registry)
    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
        answer = await client.get("/broken")
        assert (answer.status_code, answer.json()) == (500, {"reason": "InternalError"})
        assert (await client.get("/fine")).text == "ok"
        assert (await client.get("/fine?watch=false")).text == "ok"  # the general way
    assert isinstance(app.middleware_stack, MeteredServerErrors)
    text = generate_latest(registry).decode()
    assert 'fabrica_http_requests_total{code="500",kind="",verb="get"} 1.0' in text
    assert 'fabrica_http_requests_total{code="200",kind="",verb="get"} 2.0' in text
    assert "fabrica_http_requests_in_flight 0.0" in text


async def _unused(scope: Any, receive: Any, send: Any) -> None:
    raise AssertionError("set by FabricaApp")
