"""A reconcile never writes a status older than the one stored.

Its status is decided from the state it read; when anyone else writes the object between
that read and the status save (an API status or spec write, another process's reconcile),
the save is dropped and the key requeued at once, instead of the old decision being put
over the new state. Its own writes in between (progress saved mid-way, as the rack
reconciler does) do not count as someone else's.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

import pytest

from fabrica import Condition, Model, Resource
from fabrica.reconcile import ReconcileClient, Request, ResourceReconciler, Result
from fabrica.storage import FileStorage
from fabrica.store import ResourceStore
from tests._support.wait import eventually


class JobSpec(Model):
    size: int = 1


class JobStatus(Model):
    phase: str = ""
    note: str = ""
    observed_generation: int = 0
    conditions: list[Condition] = []


class Job(Resource[JobSpec, JobStatus], prefix="job"):
    pass


Meanwhile = Callable[[ResourceStore, Job], Awaitable[None]]


class JobReconciler(ResourceReconciler[Job]):
    """Saves "Working" mid-way (its own write), lets `meanwhile` happen (someone else), then
    decides "Done" from what it read."""

    kind = Job
    meanwhile: Meanwhile | None = None
    progress = False
    emits = False

    async def reconcile_job(self, job: Job) -> Result | None:
        if self.progress:
            job.status.phase = "Working"
            job = await self.client.update_status(job)
        if self.meanwhile is not None:
            await self.meanwhile(self.store, job)
        if self.emits:
            self.emit(job, "finished")
        job.status.phase = "Done"
        return None

    @property
    def store(self) -> ResourceStore:
        return self.client._store


@pytest.fixture
async def store(tmp_path):
    storage = FileStorage(tmp_path / "data")
    yield ResourceStore(storage, [Job])
    await storage.close()


def reconciler(store: ResourceStore, **how: Any) -> JobReconciler:
    rec = JobReconciler(ReconcileClient(store))
    for name, value in how.items():
        setattr(rec, name, value)
    return rec


async def api_status_write(store: ResourceStore, job: Job) -> None:
    def newer(current: Job) -> Job:
        current.status.phase, current.status.note = "Ready", "from a newer reconcile"
        return current
    await store.modify(Job, job.uid, newer, part="status")


async def api_spec_write(store: ResourceStore, job: Job) -> None:
    await store.modify(Job, job.uid, lambda c: c.model_copy(
        update={"spec": JobSpec(size=2)}))


async def test_a_status_written_meanwhile_is_not_overwritten(store):
    job = await store.create(Job, "j", JobSpec())
    result = await reconciler(store, meanwhile=api_status_write).reconcile(
        Request("Job", job.uid))
    stored = await store.get(Job, job.uid)
    assert (stored.status.phase, stored.status.note) == ("Ready", "from a newer reconcile")
    assert result == Result(requeue_after=0.0)  # decide again, from the fresh state
    assert stored.status.conditions == []  # nothing of the stale decision landed


async def test_a_spec_written_meanwhile_is_decided_again(store):
    job = await store.create(Job, "j", JobSpec())
    rec = reconciler(store, progress=True, meanwhile=api_spec_write)
    assert await rec.reconcile(Request("Job", job.uid)) == Result(requeue_after=0.0)
    stored = await store.get(Job, job.uid)
    assert stored.status.phase == "Working" and stored.status.observed_generation == 0
    rec.meanwhile = None  # the requeued reconcile sees generation 2 and records it
    assert await rec.reconcile(Request("Job", job.uid)) == Result(requeue_after=300.0)
    stored = await store.get(Job, job.uid)
    assert stored.status.phase == "Done" and stored.status.observed_generation == 2


async def test_own_progress_writes_do_not_block_the_final_save(store):
    job = await store.create(Job, "j", JobSpec())
    rec = reconciler(store, progress=True)
    assert await rec.reconcile(Request("Job", job.uid)) == Result(requeue_after=300.0)
    stored = await store.get(Job, job.uid)
    assert stored.status.phase == "Done"
    assert [c.type for c in stored.status.conditions] == ["Ready"]


async def test_an_overtaken_reconcile_drops_its_events_too(store):
    published: list[str] = []

    async def record(emission: Any) -> None:
        published.append(emission.reason)

    store.add_emission_listener(record)
    job = await store.create(Job, "j", JobSpec())
    rec = reconciler(store, emits=True, meanwhile=api_status_write)
    assert await rec.reconcile(Request("Job", job.uid)) == Result(requeue_after=0.0)
    assert published == []
    rec.meanwhile = None
    await rec.reconcile(Request("Job", job.uid))
    assert published == ["finished"]


async def test_overtaken_reconciles_are_counted_apart_and_run_again(store):
    from prometheus_client import CollectorRegistry

    from fabrica.reconcile import ControllerMetrics, KindWorkers

    registry = CollectorRegistry()
    job = await store.create(Job, "j", JobSpec())
    overtaken = []

    async def once(store: ResourceStore, job: Job) -> None:
        if not overtaken:  # the first run only: the requeued one lands
            overtaken.append(job.uid)
            await api_status_write(store, job)

    workers = KindWorkers(reconciler(store, meanwhile=once), 1, timeout=10,
                          metrics=ControllerMetrics(registry))
    workers.start()
    workers.add(job.uid)

    def count(result: str) -> float | None:
        return registry.get_sample_value("fabrica_reconcile_total",
                                         {"kind": "Job", "result": result})
    try:
        await eventually(lambda: count("requeue") is not None)
    finally:
        await asyncio.gather(*workers.shutdown())
    assert (count("overtaken"), count("requeue")) == (1.0, 1.0)
    assert (await store.get(Job, job.uid)).status.phase == "Done"
