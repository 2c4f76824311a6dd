"""`Service`: the runtime parts assembled once, started and stopped in order for every role,
without HTTP; `ServiceOptions`: every serve option, checked when made."""

from __future__ import annotations

import dataclasses

import pytest

from fabrica import ServiceSettings
from fabrica.events import MemoryBus, NatsBus
from fabrica.service import OptionError, Service, ServiceOptions
from fabrica.storage import FileStorage, LocalLeases
from tests.unit.reconcile.test_controller import Book, Shelf, ShelfReconciler

SETTINGS = ServiceSettings(project="shelves", package="shelves", events=True, reconcile=True)


def service_for(tmp_path, **options) -> Service:
    return Service([Shelf, Book], FileStorage(tmp_path), ServiceOptions(settings=SETTINGS,
                   **options), reconcilers=[ShelfReconciler])


async def test_async_with_starts_the_parts_and_stops_them(tmp_path):
    service = service_for(tmp_path, instance="node-a")
    assert isinstance(service.bus, MemoryBus) and isinstance(service.leases, LocalLeases)
    assert not service.readiness.serving
    async with service as running:
        assert running is service
        assert service.readiness.serving and not service.readiness.stopping
        status, body = await service.readiness.report()
        assert (status, body["status"]) == (200, "ready")
        await service.store.create(Shelf, "s1", {"books": 2})
        await service.controller.wait_idle()  # the controller ran: it made the books
        assert len(await service.store.list(Book)) == 2
    assert service.readiness.stopping
    assert service.bus.closed
    status, body = await service.readiness.report()
    assert status == 503 and body["checks"]["role"] == "stopping"


async def test_the_parts_stop_in_the_reverse_order_of_their_start(tmp_path):
    service = service_for(tmp_path)
    names = [name for name, _ in service._stop_steps()]
    assert names == ["watch cache", "controller", "garbage collector", "event bus", "leases",
                     "storage"]


async def test_stop_ends_the_registered_streams_first(tmp_path):
    service = service_for(tmp_path)
    ended = []
    service.add_drain(lambda: ended.append(service.readiness.stopping))
    async with service:
        assert ended == []
    assert ended == [True]  # after /ready says stopping, before the parts stop


@pytest.mark.parametrize("role, runs_controller", [("all", True), ("api", False),
                                                  ("controller", True)])
def test_each_role_runs_what_it_asks(tmp_path, role, runs_controller):
    service = service_for(tmp_path, role=role)
    assert (service.controller is not None) is runs_controller
    assert service.health()["resources"] == ["Shelf", "Book"]


def test_no_bus_without_events_or_reconcilers(tmp_path):
    service = Service([Shelf], FileStorage(tmp_path))
    assert service.bus is None and service.relay is None and service.controller is None


def test_the_nats_bus_is_made_from_the_options(tmp_path):
    service = service_for(tmp_path, events_bus="nats", nats_url="nats://127.0.0.1:1",
                          nats_stream="SHELVES_T", event_prefix="io.shelves",
                          instance="node-b")
    assert isinstance(service.bus, NatsBus)
    assert service.settings.event_prefix == "io.shelves"
    assert service.controller is not None and service.controller.shards is not None


def test_the_kafka_bus_is_made_from_the_options(tmp_path):
    from fabrica.events import KafkaBus

    service = service_for(tmp_path, events_bus="kafka", kafka_bootstrap="h1:9092,h2:9092",
                          kafka_partitions=3, event_prefix="io.shelves")
    assert isinstance(service.bus, KafkaBus)
    assert (service.bus.bootstrap, service.bus.partitions) == ("h1:9092,h2:9092", 3)
    assert service.bus.topic == "io.shelves.shelves"  # SPEC section 12: PREFIX.PROJECT
    assert service.controller is not None and service.controller.shards is not None
    named = service_for(tmp_path, events_bus="kafka", kafka_topic="racks")
    assert isinstance(named.bus, KafkaBus) and named.bus.topic == "racks"
    assert named.bus.bootstrap == "127.0.0.1:9092" and named.bus.partitions == 6


def test_kinds_must_not_share_names(tmp_path):
    with pytest.raises(ValueError, match="share the"):
        Service([Shelf, Shelf], FileStorage(tmp_path))


@pytest.mark.parametrize("options, option, message", [
    ({"role": "worker"}, "--role", "role must be one of all, api, controller"),
    ({"event_prefix": "io..x"}, "--event-prefix", "io..x"),
    ({"event_prefix": "io.*"}, "--event-prefix", "NATS wildcards"),
    ({"events_bus": "nats", "nats_stream": "a.b"}, "--nats-stream", "invalid JetStream stream"),
    ({"events_bus": "memory", "workers": 2}, None, "--workers 2 needs --events-bus nats"),
    ({"events_bus": "memory", "role": "api"}, None, "--role api needs --events-bus nats"),
    ({"events_bus": "kafka", "kafka_topic": "a/b"}, "--kafka-topic", "not a Kafka topic"),
    ({"events_bus": "kafka", "kafka_partitions": 0}, "--kafka-partitions", "one partition"),
    ({"events_bus": "kafka", "kafka_bootstrap": " , "}, "--kafka-bootstrap", "bootstrap"),
])
def test_options_are_checked_when_made(options, option, message):
    with pytest.raises(OptionError, match=message) as info:
        ServiceOptions(settings=SETTINGS, **options)
    assert info.value.option == option


def test_options_are_frozen_and_replaced_with_checks():
    options = ServiceOptions(settings=SETTINGS, events_bus="nats", workers=2)
    with pytest.raises(dataclasses.FrozenInstanceError):
        options.role = "api"  # type: ignore[misc]
    assert options.replace(role="api").role == "api"
    with pytest.raises(OptionError):
        options.replace(events_bus="memory")
    # An in-process service with the memory bus may take any role (tests, one process).
    assert ServiceOptions(settings=SETTINGS, role="controller").events_bus is None
