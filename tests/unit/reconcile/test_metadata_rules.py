"""A reconciler that writes bad metadata gets the error an HTTP client gets
(`InvalidMetadata`, from the store), and the controller handles it as any reconcile error:
Ready False with the error, counted, retried with backoff, nothing written."""

from __future__ import annotations

import pytest

from fabrica import Condition, Model, Resource
from fabrica.events import MemoryBus
from fabrica.reconcile import Controller, ControllerMetrics, ResourceReconciler
from fabrica.resource import InvalidMetadata
from fabrica.storage import FileStorage
from fabrica.store import ChangePublisher, ResourceStore


class LampSpec(Model):
    note_key: str = "example.com/note"


class LampStatus(Model):
    on: bool = False
    conditions: list[Condition] = []


class Lamp(Resource[LampSpec, LampStatus], prefix="lamp"):
    pass


refusals: list[InvalidMetadata] = []


class LampReconciler(ResourceReconciler[Lamp]):
    kind = Lamp

    async def reconcile_lamp(self, lamp: Lamp) -> None:
        if lamp.metadata.annotations.get(lamp.spec.note_key) != "lit":
            lamp.metadata.annotations[lamp.spec.note_key] = "lit"
            try:
                await self.client.update(lamp)
            except InvalidMetadata as exc:
                refusals.append(exc)
                raise
        lamp.status.on = True


@pytest.fixture
async def controller(tmp_path):
    refusals.clear()
    storage = FileStorage(tmp_path / "data")
    store = ResourceStore(storage, [Lamp])
    bus = MemoryBus()
    store.add_listener(ChangePublisher(bus, prefix="test.meta"))
    controller = Controller(store, bus, [LampReconciler], worker_count=1,
                            event_prefix="test.meta", metrics=ControllerMetrics())
    await bus.start()
    await controller.start()
    yield store, controller
    await controller.stop()
    await bus.close(drain=True)
    await storage.close()


def errors(controller: Controller) -> float:
    return controller.metrics.errors.labels("Lamp")._value.get()


async def test_a_good_annotation_is_written(controller):
    store, ctl = controller
    await store.create(Lamp, "desk", LampSpec())
    await ctl.wait_idle()
    lamp = await store.get(Lamp, "desk")
    assert lamp.metadata.annotations == {"example.com/note": "lit"} and lamp.status.on
    assert refusals == [] and errors(ctl) == 0


async def test_a_bad_annotation_fails_the_reconcile_as_any_error(controller):
    store, ctl = controller
    await store.create(Lamp, "desk", LampSpec(note_key="bad key"))
    await ctl.wait_idle()  # (its retry waits in the backoff: not busy)
    refused = refusals[0]
    assert refused.message == "invalid metadata.annotations"
    assert refused.causes[0][0] == "metadata.annotations.bad key"
    assert errors(ctl) >= 1  # counted and requeued with backoff, as any exception
    lamp = await store.get(Lamp, "desk")
    assert "bad key" not in lamp.metadata.annotations and not lamp.status.on
    ready = lamp.status.conditions[0]
    assert (ready.status, ready.reason) == ("False", "ReconcileError")
    assert ready.message.startswith("InvalidMetadata: invalid metadata.annotations")
