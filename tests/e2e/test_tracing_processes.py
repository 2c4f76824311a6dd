"""Tracing across processes (SPEC section 13): an API and a controller on one PostgreSQL and
one NATS, each exporting to a real OTLP/HTTP receiver. The POST of a rack, its outbox
relay, the controller's reconcile in the other process and the reconciler's own writes are
one trace; the API's JSON log lines (its access log included) parse one by one and carry
that trace's id."""

from __future__ import annotations

import json
from pathlib import Path

import httpx
import pytest

from tests._support.e2e import Server, make_rack_project
from tests._support.nats import URL, drop_stream_sync, names
from tests._support.otlp import Receiver, Span
from tests._support.sqldb import migrate, postgres_schema

pytestmark = pytest.mark.e2e

CALLER = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"


@pytest.fixture(scope="module")
def rack_project(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_rack_project(tmp_path_factory.mktemp("tracing"))


def test_one_trace_from_post_to_reconcile_across_two_processes(rack_project: Path) -> None:
    prefix, stream = names()
    env = {"OTEL_BSP_SCHEDULE_DELAY": "200"}  # export every 0.2 s, not 5 s
    with postgres_schema() as url, Receiver() as otlp:
        migrate(url)
        common = ("--database-url", url, "--events-bus", "nats", "--nats-url", URL,
                  "--event-prefix", prefix, "--nats-stream", stream,
                  "--otlp-endpoint", otlp.url)
        api = Server(rack_project, "rack_inventory", "--role", "api", "--instance", "api",
                     "--log-format", "json", "--access-log", *common, env=env)
        controller = Server(rack_project, "rack_inventory", "--role", "controller",
                            "--instance", "ctl", *common, env=env)
        try:
            with httpx.Client(base_url=api.url, timeout=30) as http:
                template = http.post("/racktemplates", json={
                    "name": "small", "chassisCount": 1, "chassisConfig": {
                        "bladeCount": 2, "bladeConfig": {"nodeCount": 1, "bmcMode": "shared"}}})
                rack = http.post("/racks", headers={"traceparent": CALLER}, json={
                    "name": "rack-01", "templateUID": template.json()["metadata"]["uid"]})
                assert rack.status_code == 201
                uid = rack.json()["metadata"]["uid"]
            spans = otlp.wait_for(lambda found: _reconciled(found, CALLER[3:35]), timeout=60)
        finally:
            api.stop()
            controller.stop()
            drop_stream_sync(stream)
    trace_id = CALLER[3:35]
    in_trace = [s for s in spans if s.trace_id == trace_id]
    index = {s.span_id: s for s in spans}
    post = next(s for s in in_trace if s.name == "POST /racks")
    assert post.parent_id == CALLER[36:52]
    reconcile = next(s for s in in_trace if s.name == "reconcile Rack")
    # Two processes, one trace: the reconcile's parent is the API's write.
    assert (post.instance, reconcile.instance) == ("api", "ctl")
    assert "POST /racks" in _ancestors(reconcile, index)
    assert any(s.name == "queue wait Rack" for s in in_trace)
    # The reconciler's own writes (chassis, blades...) are the reconcile's children.
    assert [s for s in in_trace if s.name.startswith("storage ")
            and "reconcile Rack" in _ancestors(s, index)]
    assert any(s.name.startswith("publish ") for s in in_trace)
    assert any(s.name == "outbox relay" and trace_id in s.links for s in spans)
    assert not [s.name for s in spans if uid in s.name or "rack-01" in s.name]
    lines = [json.loads(line) for line in api.output().splitlines() if line.strip()]
    assert all({"time", "level", "logger", "message", "trace_id", "span_id"} <= set(line)
               for line in lines)
    access = [line for line in lines if line["logger"] == "uvicorn.access"
              and "POST /racks " in line["message"]]
    assert access and access[0]["trace_id"] == trace_id and access[0]["span_id"] == post.span_id


def _reconciled(spans: list[Span], trace_id: str) -> bool:
    return any(s.name == "reconcile Rack" and s.trace_id == trace_id for s in spans) and \
        any(s.name == "outbox relay" for s in spans)


def _ancestors(span: Span, index: dict[str, Span]) -> list[str]:
    names = []
    while span.parent_id in index:
        span = index[span.parent_id]
        names.append(span.name)
    return names
