"""Tracing (SPEC section 13) in-process, against a real OTLP/HTTP receiver: the spans of a
request, its storage writes, its events and the reconcile they cause, in one trace."""

from __future__ import annotations

import asyncio
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from fabrica import Model, Resource, ServiceSettings
from fabrica.events import MemoryBus
from fabrica.reconcile import ResourceReconciler, Result
from fabrica.server import create_app
from fabrica.service import Service, ServiceOptions
from fabrica.storage import FileStorage, prepare_storage
from fabrica.store import Hooks, Reject, WriteContext
from tests._support import nats as test_nats
from tests._support.app import serve_in_process
from tests._support.otlp import Receiver, Span


class CrateSpec(Model):
    slots: int = 0


class CrateStatus(Model):
    filled: int = 0


class Crate(Resource[CrateSpec, CrateStatus], prefix="crate"):
    pass


class CrateReconciler(ResourceReconciler[Crate]):
    kind = Crate

    async def reconcile_crate(self, crate: Crate) -> Result | None:
        crate.status.filled = crate.spec.slots
        return None


class CrateHooks(Hooks[Crate]):
    async def admit(self, ctx: WriteContext, new: Crate, old: Crate | None) -> Crate | None:
        return None

    async def admit_delete(self, ctx: WriteContext, old: Crate) -> None:
        raise Reject(409, "crates are kept")


SETTINGS = ServiceSettings(project="crates", package="crates", events=True, reconcile=True)
CALLER = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"


def service(storage: Any, otlp: Receiver, **options: Any) -> Service:
    bus = None if options.get("events_bus") == "nats" else MemoryBus()
    return Service([Crate], storage, ServiceOptions(settings=SETTINGS,
                                                    otlp_endpoint=otlp.url, **options),
                   bus=bus, reconcilers=[CrateReconciler])


def by_id(spans: list[Span]) -> dict[str, Span]:
    return {s.span_id: s for s in spans}


def ancestors(span: Span, spans: dict[str, Span]) -> list[str]:
    names = []
    while span.parent_id in spans:
        span = spans[span.parent_id]
        names.append(span.name)
    return names


@pytest.mark.parametrize("bus", ["memory", "nats"])
async def test_one_trace_from_a_request_to_its_reconcile(tmp_path: Path, bus: str) -> None:
    """Memory: published after the write. NATS on SQLite: recorded in the outbox with the
    write and relayed in a batch of its own trace, linked to the write's."""
    options: dict[str, Any] = {}
    storage: Any = FileStorage(tmp_path / "data")
    if bus == "nats":
        prefix, stream = test_nats.names()
        options = {"events_bus": "nats", "nats_url": test_nats.URL, "event_prefix": prefix,
                   "nats_stream": stream}
        storage = await asyncio.to_thread(prepare_storage, tmp_path,
                                          f"sqlite:///{tmp_path}/crates.db")
    with Receiver() as otlp:
        svc = service(storage, otlp, **options)
        try:
            async with serve_in_process(create_app(svc)) as client:
                await exercise(svc, client)
        finally:
            if bus == "nats":
                await test_nats.drop_stream(options["nats_stream"])
        spans = otlp.wait_for(lambda found: any(s.name == "reconcile Crate" for s in found))
    check_one_trace(spans, otlp, outbox=bus == "nats")


async def exercise(svc: Service, client: Any) -> None:
    created = await client.post("/crates", json={"name": "c1", "slots": 3},
                                headers={"traceparent": CALLER})
    assert created.status_code == 201
    uid = created.json()["metadata"]["uid"]
    assert (await client.get(f"/crates/{uid}")).status_code == 200
    assert (await client.get("/health")).status_code == 200
    deadline = asyncio.get_running_loop().time() + 20
    while (await client.get(f"/crates/{uid}")).json()["status"]["filled"] != 3:
        assert asyncio.get_running_loop().time() < deadline, "never reconciled"
        await asyncio.sleep(0.05)
    await svc.controller.wait_idle()  # type: ignore[union-attr]


def check_one_trace(spans: list[Span], otlp: Receiver, *, outbox: bool) -> None:
    assert otlp.paths == {"/v1/traces"}
    index = by_id(spans)
    post = next(s for s in spans if s.name == "POST /crates")
    # The caller's traceparent is honoured: same trace, the caller's span as parent.
    assert (post.trace_id, post.parent_id) == (CALLER[3:35], CALLER[36:52])
    assert post.service == "crates" and post.attributes["http.route"] == "/crates"
    in_trace = [s for s in spans if s.trace_id == post.trace_id]
    names = {s.name for s in in_trace}
    assert {"storage create", "queue wait Crate", "reconcile Crate"} <= names
    publish = next(s for s in in_trace if s.name.endswith(".crate.created"))
    assert publish.name.startswith("publish ") and "POST /crates" in ancestors(publish, index)
    relays = [s for s in spans if s.name == "outbox relay"]
    if outbox:  # a batch is its own trace, linked to the writes it relayed
        assert any(post.trace_id in r.links and r.trace_id != post.trace_id for r in relays)
    else:
        assert relays == []
    reconcile = next(s for s in in_trace if s.name == "reconcile Crate")
    assert "POST /crates" in ancestors(reconcile, index)
    # The reconciler's own status write is its child.
    writes = [s for s in in_trace if s.name.startswith("storage ")
              and "reconcile Crate" in ancestors(s, index)]
    assert writes, sorted(names)
    get = next(s for s in spans if s.name == "GET /crates/{id}")
    assert get.attributes["http.route"] == "/crates/{id}"
    # Names are templates, kinds and methods: never a uid; probes make no spans.
    assert not [s.name for s in spans if "crate-" in s.name or "c1" in s.name]
    assert not [s for s in spans if s.name.startswith("GET /health")]


async def test_a_ratio_of_zero_samples_no_new_trace_but_follows_a_sampled_caller(
        tmp_path: Path) -> None:
    with Receiver() as otlp:
        svc = service(FileStorage(tmp_path / "data"), otlp, trace_sample_ratio=0.0)
        async with serve_in_process(create_app(svc)) as client:
            await client.post("/crates", json={"name": "lonely"})
            await client.post("/crates", json={"name": "followed"},
                              headers={"traceparent": CALLER})
            await svc.controller.wait_idle()  # type: ignore[union-attr]
        spans = otlp.wait_for(lambda found: any(s.name == "POST /crates" for s in found))
    posts = [s for s in spans if s.name == "POST /crates"]
    assert [p.trace_id for p in posts] == [CALLER[3:35]]


async def test_each_hook_call_is_a_span_of_the_write_it_admits(tmp_path: Path) -> None:
    with Receiver() as otlp:
        svc = Service([Crate], FileStorage(tmp_path / "data"),
                      ServiceOptions(settings=SETTINGS, otlp_endpoint=otlp.url),
                      bus=MemoryBus(), reconcilers=[CrateReconciler], hooks=[CrateHooks])
        async with serve_in_process(create_app(svc)) as client:
            created = await client.post("/crates", json={"name": "c1", "slots": 1})
            assert created.status_code == 201
            uid = created.json()["metadata"]["uid"]
            kept = await client.delete(f"/crates/{uid}")
            assert kept.status_code == 409
            await svc.controller.wait_idle()  # type: ignore[union-attr]
        spans = otlp.wait_for(lambda found: any(s.name == "DELETE /crates/{id}"
                                                for s in found))
    index = by_id(spans)
    post = next(s for s in spans if s.name == "POST /crates")
    admit = next(s for s in spans if s.name == "hook admit Crate"
                 and s.trace_id == post.trace_id)
    assert "POST /crates" in ancestors(admit, index)
    assert admit.attributes == {"fabrica.kind": "Crate", "fabrica.hook": "CrateHooks",
                                "fabrica.operation": "create", "fabrica.dry_run": False}
    assert admit.status == 0
    # The reconciler's status write runs the hook too, under its reconcile.
    assert any(s.name == "hook admit Crate" and "reconcile Crate" in ancestors(s, index)
               for s in spans)
    delete = next(s for s in spans if s.name == "DELETE /crates/{id}")
    refused = next(s for s in spans if s.name == "hook admit_delete Crate")
    assert refused.parent_id == delete.span_id or delete.name in ancestors(refused, index)
    # A refusal is the hook's answer, not a failure of the service.
    assert refused.attributes["fabrica.hook.rejected"] == 409 and refused.status == 0
    assert not [s.name for s in spans if "c1" in s.name or uid in s.name]


def test_a_service_without_tracing_loads_no_opentelemetry(tmp_path: Path) -> None:
    check = (
        "import sys\n"
        "from fabrica.server import create_app\n"
        "from fabrica.storage import FileStorage\n"
        "from fabrica import ServiceSettings\n"
        "from tests._support.app import Device\n"
        "settings = ServiceSettings(project='d', package='d', events=True)\n"
        f"create_app([Device], FileStorage({str(tmp_path)!r}), settings=settings)\n"
        "print(sorted(m for m in sys.modules if m.startswith('opentelemetry')))\n")
    env = {k: v for k, v in __import__("os").environ.items() if not k.startswith("OTEL_")}
    done = subprocess.run([sys.executable, "-c", check], capture_output=True, text=True,
                          timeout=60, env=env, cwd=Path(__file__).parents[3])
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "[]"


def test_the_standard_variable_turns_tracing_on(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", "http://127.0.0.1:4318")
    assert ServiceOptions(settings=SETTINGS).tracing
    monkeypatch.setenv("OTEL_SDK_DISABLED", "true")
    assert not ServiceOptions(settings=SETTINGS).tracing
