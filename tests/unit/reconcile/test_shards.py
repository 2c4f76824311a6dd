"""Controllers sharing the work through PostgreSQL advisory locks and one JetStream stream:
two controllers in one test process (each with its own lease connection, which is what
the database tells apart), instrumented to show that no key ever ran in both at once."""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import time

import pytest

from fabrica import Model, Resource, ServiceSettings
from fabrica.events import JetStream, NatsBus
from fabrica.reconcile import ResourceReconciler, Result, Shards
from fabrica.server import create_app
from fabrica.storage import LocalLeases, SQLStorage
from tests._support.app import serve_in_process
from tests._support.nats import URL, drop_stream, names
from tests._support.sqldb import postgres_schema
from tests._support.wait import eventually

WHO: contextvars.ContextVar[str] = contextvars.ContextVar("who", default="?")
RUNS: list[tuple[str, str, float, float]] = []  # (controller, uid, start, end)


class JobSpec(Model):
    size: int = 0


class JobStatus(Model):
    done_by: str = ""
    generation_seen: int = 0


class Job(Resource[JobSpec, JobStatus], prefix="job"):
    pass


class JobReconciler(ResourceReconciler[Job]):
    kind = Job

    async def reconcile_job(self, job: Job) -> Result | None:
        start = time.monotonic()
        await asyncio.sleep(0.01)  # paces a reconcile that takes time (kept)
        RUNS.append((WHO.get(), job.uid, start, time.monotonic()))
        job.status.done_by = WHO.get()
        job.status.generation_seen = job.metadata.generation
        return None


def overlapping(runs: list[tuple[str, str, float, float]]) -> list[tuple[str, ...]]:
    by_key: dict[str, list[tuple[str, float, float]]] = {}
    for who, uid, start, end in runs:
        by_key.setdefault(uid, []).append((who, start, end))
    clashes = []
    for uid, spans in by_key.items():
        spans.sort(key=lambda s: s[1])
        for (a, _, a_end), (b, b_start, _) in zip(spans, spans[1:], strict=False):
            if a != b and b_start < a_end:
                clashes.append((uid, a, b))
    return clashes


@pytest.fixture
def place():
    prefix, stream = names()
    with postgres_schema() as url:
        yield url, prefix, stream


async def make_app(url: str, prefix: str, stream: str, name: str):
    storage = SQLStorage(url)
    await storage.migrate()
    bus = NatsBus(URL, jetstream=JetStream.for_prefix(stream, prefix, heartbeat=0.2))
    settings = ServiceSettings(project="jobs", package="jobs", events=True, reconcile=True,
                               event_prefix=prefix, reconcile_workers=4)
    return create_app([Job], storage, bus=bus, settings=settings, reconcilers=[JobReconciler],
                      instance=name)


async def settled(client, count: int, timeout: float = 30) -> dict[str, str]:
    async def all_done() -> dict[str, str] | None:
        jobs = (await client.get("/jobs")).json()
        done = {j["metadata"]["name"]: j["status"]["doneBy"] for j in jobs
                if j["status"]["generationSeen"] == j["metadata"]["generation"]}
        return done if len(jobs) == count and len(done) == count else None
    return await eventually(all_done, timeout=timeout, interval=0.05)


async def test_two_controllers_share_the_keys_and_never_run_one_at_once(place):
    url, prefix, stream = place
    RUNS.clear()
    try:
        async with contextlib.AsyncExitStack() as stack:
            clients, apps = [], []
            for name in ("a", "b"):
                WHO.set(name)
                app = await make_app(url, prefix, stream, name)
                clients.append(await stack.enter_async_context(serve_in_process(app)))
                apps.append(app)
            a, b = (app.state.service.controller.shards for app in apps)
            await a.wait_for(lambda s: s.members == 2 and len(s.held) == 16)
            await b.wait_for(lambda s: len(s.held) == 16)
            assert not a.held & b.held
            for n in range(60):
                await clients[n % 2].post("/jobs", json={"name": f"j{n}", "size": n})
            done = await settled(clients[0], 60)
            assert set(done.values()) == {"a", "b"}  # both did work
            for n in range(0, 60, 3):  # spec changes are reconciled again, by the holder
                await clients[1].patch(f"/jobs/j{n}", json={"size": 1000 + n})
            await settled(clients[0], 60)
            assert overlapping(RUNS) == []
            metrics = (await clients[0].get("/metrics")).text
            assert "fabrica_controller_shards_held 16.0" in metrics
            assert "fabrica_controller_members 2.0" in metrics
            ready = (await clients[0].get("/ready")).json()
            assert ready["checks"]["controller"] == "ok"

            # b dies: nothing of it acts any more and its lease connection closes (the
            # database drops its locks); a takes every shard.
            started = time.monotonic()
            b._task.cancel()
            b._lost(set())
            await apps[1].state.service.leases.close()
            b.stop = _noop  # its locks went with its connection
            await a.wait_for(lambda s: len(s.held) == 32, timeout=15)
            assert time.monotonic() - started < 15
            await clients[0].post("/jobs", json={"name": "after", "size": 1})
            done = await settled(clients[0], 61)
            assert done["after"] == "a"
    finally:
        await drop_stream(stream)


async def _noop() -> None:
    return None


async def test_one_process_holds_every_shard_on_local_leases():
    shards = Shards(LocalLeases(), instance="solo", count=8)
    taken: list[set[int]] = []

    async def on_acquired(new: set[int]) -> None:
        taken.append(new)

    await shards.start(on_acquired)
    try:
        assert shards.held == frozenset(range(8)) and taken == [set(range(8))]
        assert all(shards.owns(f"job-{n:08x}") for n in range(100))
        assert shards.begin("job-00000001")
        shards.end("job-00000001")
    finally:
        await shards.stop()
    assert shards.held == frozenset() and not shards.begin("job-00000001")
