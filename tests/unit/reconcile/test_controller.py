"""The reconcile controller in-process: events → queue → ResourceReconciler, end to end."""

from __future__ import annotations

import asyncio

import pytest
from pydantic import Field

from fabrica import Condition, Model, Resource, ServiceSettings
from fabrica.reconcile import ResourceReconciler, Result, TerminalError
from fabrica.server import create_app
from fabrica.storage import FileStorage
from tests._support.app import serve_in_process
from tests._support.wait import eventually


class ShelfSpec(Model):
    books: int = Field(0, ge=0)
    fail_times: int = 0
    terminal: bool = False


class ShelfStatus(Model):
    placed: int = 0
    attempts: int = 0
    observed_generation: int = 0
    conditions: list[Condition] = []


class Shelf(Resource[ShelfSpec, ShelfStatus], prefix="shelf"):
    pass


class BookSpec(Model):
    shelf: str


class BookStatus(Model):
    phase: str = ""


class Book(Resource[BookSpec, BookStatus], prefix="book"):
    pass


calls: dict[str, int] = {}
finalized: list[str] = []


class ShelfReconciler(ResourceReconciler[Shelf]):
    kind = Shelf

    async def reconcile_shelf(self, shelf: Shelf) -> Result | None:
        calls[shelf.name] = calls.get(shelf.name, 0) + 1
        if shelf.spec.terminal:
            raise TerminalError("this shelf can never be built")
        if calls[shelf.name] <= shelf.spec.fail_times:
            raise RuntimeError(f"flaky failure {calls[shelf.name]}")
        for n in range(shelf.spec.books):
            await self.client.ensure(Book, f"{shelf.name}-book-{n}", {"shelf": shelf.uid},
                                     owner=shelf)
        books = await self.client.list(Book)
        shelf.status.placed = sum(1 for b in books if b.metadata.is_owned_by(shelf.uid))
        return None

    async def finalize_shelf(self, shelf: Shelf) -> None:
        finalized.append(shelf.name)


class BookReconcilerWithoutCode(ResourceReconciler[Book]):
    kind = Book  # no reconcile_book: not registered


@pytest.fixture
async def client(tmp_path):
    calls.clear()
    finalized.clear()
    settings = ServiceSettings(project="shelves", package="shelves", events=True,
                               reconcile=True, reconcile_workers=2)
    app = create_app([Shelf, Book], FileStorage(tmp_path), settings=settings,
                     reconcilers=[ShelfReconciler, BookReconcilerWithoutCode])
    async with serve_in_process(app) as c:
        c.app = app
        yield c


async def settle(client):
    await client.app.state.service.controller.wait_idle()
    await client.app.state.service.garbage_collector.wait_idle()


async def test_reconcile_creates_children_and_records_ready(client):
    assert client.app.state.service.controller.kinds == ["Shelf"]
    await client.post("/shelves", json={"name": "s1", "books": 3})
    await settle(client)
    shelf = (await client.get("/shelves/s1")).json()
    assert shelf["status"]["placed"] == 3
    ready = shelf["status"]["conditions"][0]
    assert (ready["type"], ready["status"], ready["reason"]) == ("Ready", "True", "Reconciled")
    assert ready["observedGeneration"] == 1 and shelf["status"]["observedGeneration"] == 1
    assert shelf["metadata"]["finalizers"] == ["fabrica.io/shelf-reconciler"]
    assert len((await client.get("/books")).json()) == 3


async def test_spec_change_reconciles_again_status_writes_do_not(client):
    await client.post("/shelves", json={"name": "s1", "books": 1})
    await settle(client)
    before = calls["s1"]
    await client.patch("/shelves/s1/status", json={"attempts": 7})
    await settle(client)
    assert calls["s1"] == before  # a status write is no reason to reconcile
    await client.patch("/shelves/s1", json={"books": 2})
    await settle(client)
    shelf = (await client.get("/shelves/s1")).json()
    assert calls["s1"] > before  # the spec change, then the new book (an owned child)
    assert shelf["status"]["placed"] == 2
    assert shelf["status"]["conditions"][0]["observedGeneration"] == 2


async def test_failures_retry_with_backoff_then_succeed(client):
    await client.post("/shelves", json={"name": "flaky", "books": 1, "failTimes": 3})
    await eventually(lambda: calls.get("flaky", 0) >= 4)
    await settle(client)
    shelf = (await client.get("/shelves/flaky")).json()
    assert shelf["status"]["conditions"][0]["status"] == "True"
    assert shelf["status"]["placed"] == 1
    metrics = (await client.get("/metrics")).text
    assert 'fabrica_reconcile_errors_total{kind="Shelf"} 3.0' in metrics
    assert 'fabrica_workqueue_retries_total{kind="Shelf"} 3.0' in metrics
    assert "fabrica_reconcile_duration_seconds_bucket" in metrics
    assert 'fabrica_http_requests_total{code="201",kind="Shelf",verb="create"}' in metrics


async def test_error_is_recorded_in_ready_condition(client):
    await client.post("/shelves", json={"name": "broken", "failTimes": 1000})

    async def recorded() -> list[dict[str, str]]:
        return (await client.get("/shelves/broken")).json()["status"]["conditions"]
    conditions = await eventually(recorded)
    assert conditions[0]["status"] == "False" and conditions[0]["reason"] == "ReconcileError"
    assert "flaky failure" in conditions[0]["message"]


async def test_terminal_error_is_not_retried(client):
    await client.post("/shelves", json={"name": "never", "terminal": True})
    await settle(client)
    settled = calls["never"]  # the create, and the reconciler's own finalizer write
    await asyncio.sleep(0.3)  # kept: proves no retry comes (backoff starts at 5 ms)
    assert calls["never"] == settled <= 2
    condition = (await client.get("/shelves/never")).json()["status"]["conditions"][0]
    assert (condition["status"], condition["reason"]) == ("False", "ReconcileFailed")


async def test_deleting_runs_the_finalizer_then_cascades(client):
    await client.post("/shelves", json={"name": "s1", "books": 2})
    await settle(client)
    await client.delete("/shelves/s1")
    await settle(client)
    assert finalized == ["s1"]
    assert (await client.get("/shelves/s1")).status_code == 404
    assert (await client.get("/books")).json() == []


async def test_existing_resources_are_reconciled_at_start(tmp_path):
    storage_dir = tmp_path / "data"
    plain = create_app([Shelf, Book], FileStorage(storage_dir),
                       settings=ServiceSettings(project="s", package="s"))
    async with serve_in_process(plain) as c:  # no controller: nothing reconciles
        await c.post("/shelves", json={"name": "waiting", "books": 2})
    calls.clear()
    settings = ServiceSettings(project="s", package="s", events=True, reconcile=True)
    app = create_app([Shelf, Book], FileStorage(storage_dir), settings=settings,
                     reconcilers=[ShelfReconciler])
    async with serve_in_process(app) as c:
        await app.state.service.controller.wait_idle()
        assert (await c.get("/shelves/waiting")).json()["status"]["placed"] == 2


async def test_bad_event_pattern_is_400(client):
    response = await client.get("/events?type=a.**.b")
    assert response.status_code == 400
