"""The request metrics' exposition (SPEC section 13): `HTTPMetrics` keeps plain counts and
renders them at a scrape, so what it renders is checked against prometheus_client's own
`Counter` and `Histogram` fed the same requests."""

from __future__ import annotations

import re

from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest

from fabrica.server.http._observe import _BUCKETS, HTTPMetrics


async def _app(scope, receive, send):  # type: ignore[no-untyped-def]
    await send({"type": "http.response.start", "status": 200, "headers": []})


def _samples(text: str, name: str) -> list[str]:
    return sorted(line for line in text.splitlines()
                  if line.startswith(name) and "_created" not in line)


def test_counts_and_histogram_render_as_prometheus_client_would() -> None:
    ours = CollectorRegistry()
    metrics = HTTPMetrics(_app, registry=ours)
    theirs = CollectorRegistry()
    counter = Counter("fabrica_http_requests_total", "HTTP requests", ["kind", "verb", "code"],
                      registry=theirs)
    histogram = Histogram("fabrica_http_request_duration_seconds", "HTTP latency",
                          ["kind", "verb"], buckets=_BUCKETS, registry=theirs)
    # On a bound, between bounds, beyond the last; two label sets, two codes.
    requests = [("Rack", "get", 200, 0.005), ("Rack", "get", 200, 0.0051),
                ("Rack", "get", 404, 0.0004), ("", "get", 200, 11.0), ("Rack", "list", 200, 1)]
    for kind, verb, code, seconds in requests:
        metrics._record(kind, verb, code, seconds)
        counter.labels(kind, verb, str(code)).inc()
        histogram.labels(kind, verb).observe(seconds)
    got, want = generate_latest(ours).decode(), generate_latest(theirs).decode()
    for name in ("fabrica_http_requests_total", "fabrica_http_request_duration_seconds"):
        assert _samples(got, name) == _samples(want, name), name
    assert re.search(r'^fabrica_http_requests_created\{code="200",kind="Rack",verb="get"\} ',
                     got, re.M)
    assert "# TYPE fabrica_http_request_duration_seconds histogram" in got
