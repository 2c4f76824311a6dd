"""The controller's parts on their own (source, handler) and put together without an HTTP
server: a store, a bus, the `ChangePublisher` beside the store and a `Controller`."""

from __future__ import annotations

import asyncio

import pytest
from prometheus_client import CollectorRegistry

from fabrica.events import MemoryBus, ResourceEvent, condition_event, lifecycle_event
from fabrica.reconcile import (
    Controller,
    ControllerMetrics,
    EventSource,
    KindWorkers,
    OwnerHandler,
    Result,
)
from fabrica.storage import FileStorage
from fabrica.store import ChangePublisher, ResourceStore
from tests._support.wait import eventually
from tests.unit.reconcile.test_controller import Book, Shelf, ShelfReconciler, calls


def event(kind, uid, action="updated", owners=(), update_type=None):
    refs = [{"kind": k, "uid": u, "name": u} for k, u in owners]
    return ResourceEvent.parse(lifecycle_event(
        action, kind, kind.lower() + "s", uid, uid,
        resource={"metadata": {"ownerReferences": refs}},
        metadata={"updateType": update_type} if update_type else None))


class Recorder:
    def __init__(self, owners=None):
        self.keys: list[tuple[str, str]] = []
        self.loaded: list[str] = []
        self.stored = owners or {}

    def enqueue(self, kind, uid):
        self.keys.append((kind, uid))

    async def load(self, kind, uid):
        self.loaded.append(uid)
        return self.stored.get(uid)


async def test_handler_queues_the_resource_and_its_nearest_reconciled_ancestor():
    seen = Recorder({"blade-1": ("Blade", [("Chassis", "ch-1")]),
                     "ch-1": ("Chassis", [("Rack", "rack-1")])})
    handler = OwnerHandler({"Rack", "Node"}, seen.enqueue, seen.load)
    await handler(event("Node", "node-1", owners=[("Blade", "blade-1")]))
    assert seen.keys == [("Node", "node-1"), ("Rack", "rack-1")]
    assert seen.loaded == ["blade-1", "ch-1"]
    seen.keys.clear()
    await handler(event("Node", "node-2", owners=[("Blade", "blade-1")]))
    assert seen.keys == [("Node", "node-2"), ("Rack", "rack-1")]
    assert seen.loaded == ["blade-1", "ch-1"]  # the walk is cached now


async def test_handler_skips_a_kinds_own_status_writes():
    seen = Recorder()
    handler = OwnerHandler({"Rack"}, seen.enqueue, seen.load)
    await handler(event("Rack", "rack-1", update_type="status"))
    assert seen.keys == []
    await handler(event("Rack", "rack-1", update_type="spec"))
    assert seen.keys == [("Rack", "rack-1")]


async def test_handler_learns_owners_from_events_and_forgets_the_deleted():
    seen = Recorder()
    handler = OwnerHandler({"Rack"}, seen.enqueue, seen.load)
    await handler(event("Chassis", "ch-1", owners=[("Rack", "rack-1")]))
    await handler(event("Blade", "blade-1", owners=[("Chassis", "ch-1")]))
    assert seen.loaded == [] and seen.keys == [("Rack", "rack-1")] * 2
    await handler(event("Chassis", "ch-1", action="deleted", owners=[("Rack", "rack-1")]))
    await handler(event("Blade", "blade-1", owners=[("Chassis", "ch-1")]))
    assert seen.loaded == ["ch-1"]  # no longer known: asked for, and gone


async def test_source_passes_lifecycle_events_parsed_once():
    bus = MemoryBus()
    await bus.start()
    got: list[ResourceEvent] = []

    async def handler(parsed: ResourceEvent) -> None:
        got.append(parsed)

    source = EventSource(bus, event_prefix="test.parts")
    await source.start(handler)
    await bus.publish(condition_event("Rack", "racks", "rack-1", "r", {"type": "Ready",
                                                                        "status": "True"},
                                      prefix="test.parts"))
    await bus.publish(lifecycle_event("created", "Rack", "racks", "rack-1", "r",
                                      prefix="test.parts"))
    await bus.publish(lifecycle_event("created", "Rack", "racks", "rack-2", "r",
                                      prefix="other"))
    await eventually(lambda: got)
    await source.stop()
    await bus.close(drain=True)
    assert [(e.uid, e.action) for e in got] == [("rack-1", "created")]


@pytest.fixture
async def headless(tmp_path):
    """What a controller-only process runs: no Starlette anywhere."""
    calls.clear()
    storage = FileStorage(tmp_path / "data")
    store = ResourceStore(storage, [Shelf, Book])
    bus = MemoryBus()
    store.add_listener(ChangePublisher(bus, prefix="test.headless"))
    controller = Controller(store, bus, [ShelfReconciler], worker_count=2,
                            event_prefix="test.headless")
    await bus.start()
    await controller.start()
    yield store, controller
    await controller.stop()
    await bus.close(drain=True)
    await storage.close()


async def test_a_controller_runs_without_an_http_server(headless):
    store, controller = headless
    shelf = await store.create(Shelf, "s1", Shelf.resource_info.spec_type(books=3))
    await controller.wait_idle()
    reconciled = await store.get(Shelf, shelf.uid)
    assert reconciled.status.placed == 3 and reconciled.status.observed_generation == 1
    assert len(await store.list(Book)) == 3
    for book in await store.list(Book):  # a child deleted: the owner walk brings it back
        await store.delete(Book, book.uid)
        break

    async def three_books() -> bool:
        return len(await store.list(Book)) == 3
    await eventually(three_books)
    await controller.wait_idle()
    assert len(await store.list(Book)) == 3


async def test_a_worker_cancelled_as_its_reconcile_returns_stops():
    """A reconcile that ends in the same loop turn as the cancel stopping its worker: the
    worker stops, and takes no further key. (With `asyncio.wait_for` around the reconcile
    the cancel was swallowed and the worker went on to the next key.)"""
    release = asyncio.Event()
    started: list[str] = []

    class Gated:
        kind = Book

        async def reconcile(self, request):
            started.append(request.uid)
            await release.wait()
            return Result()

    workers = KindWorkers(Gated(), 1, timeout=30,  # type: ignore[arg-type]
                          metrics=ControllerMetrics(CollectorRegistry()))
    workers.start()
    workers.add("boo-1")
    workers.add("boo-2")
    await eventually(lambda: started == ["boo-1"])
    (task,) = workers._tasks
    release.set()  # the reconcile can return ...
    task.cancel()  # ... in the very turn the worker is told to stop
    done, _ = await asyncio.wait({task}, timeout=2)
    assert done and task.cancelled()
    assert started == ["boo-1"]
