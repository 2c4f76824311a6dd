"""`ChangePublisher.events`: which CloudEvents one committed write publishes."""

from __future__ import annotations

from fabrica import Model, Resource
from fabrica.events import MemoryBus
from fabrica.resource import Condition, Metadata, utcnow
from fabrica.store import Change, ChangePublisher


class PumpSpec(Model):
    rate: int = 1


class PumpStatus(Model):
    conditions: list[Condition] = []


class Pump(Resource[PumpSpec, PumpStatus], prefix="pump"):
    pass


def pump(*conditions: tuple[str, str]) -> Pump:
    status = PumpStatus(conditions=[
        Condition(type=ctype, status=cstatus, last_transition_time=utcnow())
        for ctype, cstatus in conditions])
    return Pump(metadata=Metadata(name="p1", uid="pump-1a2b3c4d"), spec=PumpSpec(),
                status=status)


def types(events) -> list[str]:
    return [event.type for event in events]


def test_a_condition_that_changes_status_publishes_its_event():
    publisher = ChangePublisher(MemoryBus())
    before, after = pump(("Ready", "False")), pump(("Ready", "True"))
    events = publisher.events(Change("updated", after, previous=before, update_type="status"))
    assert types(events) == ["io.fabrica.pump.updated", "io.fabrica.condition.ready"]


def test_a_delete_publishes_no_condition_event():
    # The resource's conditions did not change: it went away. Deleting a Ready rack used
    # to announce "Ready" again, once per condition it had.
    publisher = ChangePublisher(MemoryBus())
    gone = pump(("Ready", "True"), ("Healthy", "True"))
    assert types(publisher.events(Change("deleted", gone))) == ["io.fabrica.pump.deleted"]
