"""The event layer: CloudEvents envelopes, type patterns, the memory bus and SSE framing."""

from __future__ import annotations

import ast
import asyncio
import json
import logging
import re
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

import fabrica.events
from fabrica.events import (
    BusClosed,
    CloudEvent,
    EventBus,
    EventStream,
    MemoryBus,
    Subscription,
    compile_pattern,
    condition_event,
    format_sse,
    lifecycle_event,
    sse_stream,
    type_matches,
)

NOW = datetime(2025, 3, 4, 5, 6, 7, 890123, tzinfo=UTC)
RACK = {"apiVersion": "v1", "kind": "Rack", "metadata": {"name": "r1"}, "spec": {}}


def rack_event(action: str = "created", uid: str = "rack-1a2b3c4d", **kw: Any) -> CloudEvent:
    return lifecycle_event(action, "Rack", "racks", uid, "r1", **kw)


def numbered(n: int, kind: str = "Rack") -> list[CloudEvent]:
    return [lifecycle_event("updated", kind, "racks", f"rack-{i:08x}", "r1") for i in range(n)]


# -- the public face and the layering ----------------------------------------------------


def test_public_exports():
    assert sorted(fabrica.events.__all__) == sorted([
        "LIFECYCLE_ACTIONS", "REASON_PATTERN", "BusClosed", "CloudEvent", "EventBus",
        "EventBusError", "EventStream", "ExtensionValue", "Handler", "JetStream", "KafkaBus",
        "MemoryBus", "NatsBus", "ResourceEvent", "Subscription", "SubscriptionStats", "TypePattern",
        "check_reason", "compile_pattern", "condition_event", "format_sse", "format_time",
        "lifecycle_event", "reason_event", "sse_frames", "sse_stream", "type_matches",
    ])  # fmt: skip
    for name in fabrica.events.__all__:
        assert getattr(fabrica.events, name) is not None


def test_events_import_neither_storage_nor_server():
    package = Path(fabrica.events.__file__).parent
    for module in package.glob("*.py"):
        for node in ast.walk(ast.parse(module.read_text())):
            if isinstance(node, ast.ImportFrom):
                names = [f"{'.' * node.level}{node.module or ''}"]
            elif isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            else:
                continue
            for name in names:
                assert not re.match(r"(fabrica|\.\.)\.?(storage|server|store)\b", name), (
                    f"{module.name} imports {name}"
                )


# -- envelopes ---------------------------------------------------------------------------

_RFC3339 = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?(Z|[+-]\d\d:\d\d)")


def assert_cloudevents_1_0(obj: dict[str, Any]) -> None:
    """The CloudEvents 1.0 structured JSON rules our events must keep."""
    for required in ("id", "source", "specversion", "type"):
        assert isinstance(obj[required], str) and obj[required], required
    assert obj["specversion"] == "1.0"
    for optional in ("subject", "datacontenttype", "dataschema"):
        assert optional not in obj or isinstance(obj[optional], str) and obj[optional]
    if "time" in obj:
        assert _RFC3339.fullmatch(obj["time"]), obj["time"]
    assert "data_base64" not in obj
    core = {"id", "source", "specversion", "type", "subject", "time", "datacontenttype"}
    for name, value in obj.items():
        if name in core | {"dataschema", "data"}:
            continue
        assert re.fullmatch(r"[a-z0-9]{1,20}", name), f"bad extension name {name!r}"
        assert isinstance(value, str | int | bool), name


def test_lifecycle_event_matches_the_spec():
    event = rack_event(resource=RACK, now=NOW)
    assert event.to_dict() == {
        "specversion": "1.0",
        "id": event.id,
        "source": "fabrica/resources/Rack/rack-1a2b3c4d",
        "type": "io.fabrica.rack.created",
        "subject": "racks/rack-1a2b3c4d",
        "time": "2025-03-04T05:06:07.890123Z",
        "datacontenttype": "application/json",
        "resourcekind": "Rack",
        "resourceuid": "rack-1a2b3c4d",
        "action": "created",
        "data": {
            "action": "created",
            "resourceKind": "Rack",
            "resourceUID": "rack-1a2b3c4d",
            "resourceName": "r1",
            "changeTime": "2025-03-04T05:06:07.890123Z",
            "resource": RACK,
        },
    }
    assert uuid.UUID(event.id).version == 4
    assert_cloudevents_1_0(event.to_dict())


@pytest.mark.parametrize("action", ["created", "updated", "patched", "deleted"])
def test_lifecycle_types_per_action(action):
    event = lifecycle_event(action, "RackTemplate", "racktemplates", "rt-00000001", "t")
    assert event.type == f"io.fabrica.racktemplate.{action}"
    assert event.source == "fabrica/resources/RackTemplate/rt-00000001"
    assert event.subject == "racktemplates/rt-00000001"
    assert event.action == event.data["action"] == action
    assert "resource" not in event.data and "metadata" not in event.data


def test_lifecycle_prefix_source_and_status_metadata():
    event = rack_event(
        "updated", prefix="org.example", source="rack-svc", metadata={"updateType": "status"}
    )
    assert event.type == "org.example.rack.updated"
    assert event.source == "rack-svc/resources/Rack/rack-1a2b3c4d"
    assert event.data["metadata"] == {"updateType": "status"}


def test_lifecycle_event_rejects_bad_input():
    with pytest.raises(ValueError, match="unknown lifecycle action 'create'"):
        rack_event("create")
    with pytest.raises(ValueError, match="kind"):
        lifecycle_event("created", "a.b", "abs", "a-00000000", "x")
    with pytest.raises(ValueError, match="empty segment"):
        rack_event(prefix="io..fabrica")


def test_ids_are_unique_and_time_is_utc_z():
    events = numbered(100)
    assert len({e.id for e in events}) == 100
    assert all(e.to_dict()["time"].endswith("Z") for e in events)


def test_condition_event():
    condition = {
        "type": "Ready",
        "status": "True",
        "reason": "Provisioned",
        "message": "all chassis up",
        "lastTransitionTime": NOW,
        "observedGeneration": 2,
    }
    event = condition_event(
        "Rack", "racks", "rack-1a2b3c4d", "r1", condition, previous_status="False", now=NOW
    )
    obj = event.to_dict()
    assert_cloudevents_1_0(obj)
    assert obj["type"] == "io.fabrica.condition.ready"
    assert obj["source"] == "fabrica/resources/Rack/rack-1a2b3c4d/conditions/ready"
    assert obj["subject"] == "racks/rack-1a2b3c4d"
    assert (obj["resourcekind"], obj["resourceuid"]) == ("Rack", "rack-1a2b3c4d")
    assert (obj["conditiontype"], obj["conditionstatus"]) == ("Ready", "True")
    assert "action" not in obj
    stamp = "2025-03-04T05:06:07.890123Z"
    assert obj["data"] == {
        "conditionType": "Ready",
        "status": "True",
        "previousStatus": "False",
        "reason": "Provisioned",
        "message": "all chassis up",
        "transitionTime": stamp,
        "resourceKind": "Rack",
        "resourceUID": "rack-1a2b3c4d",
        "resourceName": "r1",
        "condition": {**condition, "lastTransitionTime": stamp},
    }
    json.loads(event.to_json())  # JSON-serialisable throughout
    with pytest.raises(ValueError, match="'type' and 'status'"):
        condition_event("Rack", "racks", "rack-1", "r1", {"type": "Ready"})


def test_json_is_compact_and_round_trips():
    event = rack_event(resource={**RACK, "spec": {"note": "ünïcode\nline"}})
    text = event.to_json()
    assert "\n" not in text and ": " not in text and ", " not in text
    assert json.loads(text) == event.to_dict()
    assert CloudEvent.from_json(text) == event
    assert CloudEvent.from_json(text.encode()) == event
    assert hash(CloudEvent.from_json(text)) == hash(event)


def test_foreign_extensions_and_minimal_events_round_trip():
    obj = {
        "specversion": "1.0",
        "id": "A234-1234-1234",
        "source": "https://example.com/things",
        "type": "com.example.thing.done",
        "traceparent": "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01",
        "count": 3,
        "urgent": True,
    }
    event = CloudEvent.from_dict(obj)
    assert event.time is None and event.datacontenttype is None and event.data is None
    assert event.extensions["count"] == 3
    assert json.loads(event.to_json()) == obj
    assert_cloudevents_1_0(event.to_dict())


@pytest.mark.parametrize(
    "change, message",
    [
        ({"specversion": "0.3"}, "specversion"),
        ({"id": None}, "'id'"),
        ({"source": ""}, "'source'"),
        ({"type": 7}, "'type'"),
        ({"subject": 1}, "'subject'"),
        ({"time": "yesterday"}, "RFC 3339"),
        ({"time": "2025-03-04T05:06:07"}, "UTC offset"),
        ({"data_base64": "AAAA"}, "data_base64"),
        ({"Bad-Name": "x"}, "extension name"),
        ({"ratio": 0.5}, "int32"),
        ({"big": 2**40}, "int32"),
    ],
)
def test_from_dict_rejects_invalid_events(change, message):
    obj = {**rack_event().to_dict(), **change}
    obj = {k: v for k, v in obj.items() if v is not None}
    with pytest.raises(ValueError, match=message):
        CloudEvent.from_dict(obj)


def test_from_json_rejects_non_objects():
    with pytest.raises(ValueError, match="not valid JSON"):
        CloudEvent.from_json("{")
    with pytest.raises(ValueError, match="JSON object"):
        CloudEvent.from_json("[]")


def test_envelope_is_frozen_and_times_are_aware():
    event = rack_event()
    with pytest.raises(AttributeError):
        event.type = "x"  # type: ignore[misc]
    with pytest.raises(TypeError):
        event.extensions["x"] = "y"  # type: ignore[index]
    with pytest.raises(ValueError, match="timezone-aware"):
        CloudEvent(type="t", source="s", time=datetime(2025, 1, 1))


# -- type patterns -----------------------------------------------------------------------


@pytest.mark.parametrize(
    "pattern, event_type, expected",
    [
        ("io.fabrica.rack.created", "io.fabrica.rack.created", True),
        ("io.fabrica.rack.created", "io.fabrica.rack.deleted", False),
        ("io.fabrica.rack.created", "io.fabrica.rack.created.v2", False),
        ("io.fabrica.*.created", "io.fabrica.rack.created", True),
        ("io.fabrica.*.created", "io.fabrica.created", False),
        ("io.fabrica.*.created", "io.fabrica.rack.blade.created", False),
        ("io.fabrica.rack.*", "io.fabrica.rack.created", True),
        ("io.fabrica.rack.*", "io.fabrica.rack", False),
        ("io.fabrica.rack.*", "io.fabrica.rack.created.v2", False),
        ("io.fabrica.rack.*", "io.fabrica.rackx.created", False),
        ("io.fabrica.*", "ioXfabrica.rack", False),
        ("io.fabrica.**", "io.fabrica", True),
        ("io.fabrica.**", "io.fabrica.rack", True),
        ("io.fabrica.**", "io.fabrica.condition.ready", True),
        ("io.fabrica.**", "io.fabricate.rack", False),
        ("io.fabrica.**", "io", False),
        ("io.*.**", "io.fabrica", True),
        ("io.*.**", "io.fabrica.rack.created", True),
        ("io.*.**", "io", False),
        ("*", "io", True),
        ("*", "io.fabrica", False),
        ("*.**", "io", True),
        ("**", "io", True),
        ("**", "io.fabrica.rack.created", True),
        ("io.fabrica.condition.*", "io.fabrica.condition.ready", True),
        ("io.fabrica.condition.*", "io.fabrica.rack.created", False),
    ],
)
def test_pattern_matching(pattern, event_type, expected):
    assert type_matches(pattern, event_type) is expected
    assert compile_pattern(pattern).matches(event_type) is expected


@pytest.mark.parametrize(
    "pattern, message",
    [
        ("", "non-empty"),
        ("io..rack", "empty segment"),
        (".io", "empty segment"),
        ("io.", "empty segment"),
        ("io.**.created", "last segment"),
        ("**.created", "last segment"),
        ("io.fab*", "whole segments"),
        ("io.*x", "whole segments"),
        ("***", "whole segments"),
        ("io. rack", "whitespace"),
        # NATS's subject rules on every bus: the memory bus took these and never matched
        (">", "'>' is not allowed"),
        ("io.fabrica.>", "'>' is not allowed"),
        ("io.a>b", "'>' is not allowed"),
        ("a\x00b", "control characters"),
        ("io.\x7f", "control characters"),
    ],
)
def test_invalid_patterns(pattern, message):
    with pytest.raises(ValueError, match=message):
        compile_pattern(pattern)


def test_patterns_are_compiled_once():
    assert compile_pattern("io.fabrica.*.created") is compile_pattern("io.fabrica.*.created")


# -- the memory bus ----------------------------------------------------------------------


class Recorder:
    """An async handler that records what it receives."""

    def __init__(self) -> None:
        self.events: list[CloudEvent] = []
        self.__qualname__ = "Recorder"

    async def __call__(self, event: CloudEvent) -> None:
        self.events.append(event)


class Gate:
    """A handler that blocks on every event until opened."""

    def __init__(self) -> None:
        self.events: list[CloudEvent] = []
        self.entered = asyncio.Event()
        self.opened = asyncio.Event()
        self.__qualname__ = "Gate"

    async def __call__(self, event: CloudEvent) -> None:
        self.entered.set()
        await self.opened.wait()
        self.events.append(event)


async def settle() -> None:
    for _ in range(10):
        await asyncio.sleep(0)


async def test_bus_and_subscriptions_keep_the_protocols():
    async with MemoryBus() as bus:
        assert isinstance(bus, EventBus)
        sub = await bus.subscribe("**", Recorder())
        assert isinstance(sub, Subscription)
        async with bus.stream() as stream:
            assert isinstance(stream, EventStream)


async def test_delivery_in_publish_order_and_drain_on_close():
    bus = MemoryBus()
    await bus.start()
    record = Recorder()
    await bus.subscribe("io.fabrica.rack.*", record)
    events = numbered(300)
    for event in events:
        await bus.publish(event)
    await bus.publish(rack_event("deleted"))
    await bus.publish(numbered(1, kind="Device")[0])
    await bus.close()
    assert [e.id for e in record.events[:300]] == [e.id for e in events]
    assert record.events[300].type == "io.fabrica.rack.deleted"
    assert len(record.events) == 301


async def test_a_raising_handler_does_not_stop_others(caplog):
    async def broken(event: CloudEvent) -> None:
        raise RuntimeError("boom")

    record = Recorder()
    async with MemoryBus() as bus:
        bad = await bus.subscribe("**", broken, name="broken-reconciler")
        await bus.subscribe("**", record)
        for event in numbered(5):
            await bus.publish(event)
        await settle()
        assert len(record.events) == 5
        stats = {s.name: s for s in bus.stats()}
        assert stats["broken-reconciler"].failed == 5
        assert stats["broken-reconciler"].delivered == 0
        assert stats["Recorder"].delivered == 5
        assert bad.stats.failed == 5
    failures = [r for r in caplog.records if r.name == "fabrica.events"]
    assert len(failures) == 5
    assert "broken-reconciler" in failures[0].getMessage()
    assert "io.fabrica.rack.updated" in failures[0].getMessage()
    assert failures[0].exc_info is not None


async def test_a_slow_handler_does_not_delay_others():
    gate, record = Gate(), Recorder()
    async with MemoryBus() as bus:
        await bus.subscribe("**", gate)
        await bus.subscribe("**", record)
        for event in numbered(10):
            await bus.publish(event)
        await settle()
        assert len(record.events) == 10 and gate.events == []
        gate.opened.set()
    assert len(gate.events) == 10


async def test_full_handler_queue_makes_publish_wait_and_keeps_order():
    gate = Gate()
    events = numbered(6)
    async with MemoryBus(queue_size=2) as bus:
        slow = await bus.subscribe("**", gate)
        await bus.publish(events[0])
        await gate.entered.wait()  # event 0 is in the handler, the queue is empty
        await bus.publish(events[1])
        await bus.publish(events[2])  # the queue is full now
        blocked = [asyncio.create_task(bus.publish(e)) for e in events[3:]]
        await settle()
        assert not any(t.done() for t in blocked)
        assert slow.stats.pending == 5 and slow.stats.dropped == 0
        gate.opened.set()
        await asyncio.gather(*blocked)
    assert [e.id for e in gate.events] == [e.id for e in events]
    assert slow.stats.dropped == 0 and slow.stats.delivered == 6


async def test_publish_gives_up_after_its_timeout_and_counts_the_drop(caplog):
    gate, record = Gate(), Recorder()
    events = numbered(4)
    async with MemoryBus(queue_size=1, publish_timeout=0.05) as bus:
        slow = await bus.subscribe("**", gate, name="slow")
        await bus.subscribe("**", record)
        await bus.publish(events[0])
        await gate.entered.wait()
        await bus.publish(events[1])
        await bus.publish(events[2])  # waits 0.05 s, then is dropped for `slow` only
        assert slow.stats.dropped == 1
        gate.opened.set()
        await bus.publish(events[3])
    assert [e.id for e in gate.events] == [events[i].id for i in (0, 1, 3)]
    assert [e.id for e in record.events] == [e.id for e in events]
    (message,) = [r.getMessage() for r in caplog.records if r.levelno == logging.ERROR]
    assert "slow" in message and events[2].id in message and "io.fabrica.rack" in message


async def test_a_cancelled_publisher_retracts_its_event():
    gate = Gate()
    events = numbered(3)
    async with MemoryBus(queue_size=1) as bus:
        slow = await bus.subscribe("**", gate)
        await bus.publish(events[0])
        await gate.entered.wait()
        await bus.publish(events[1])
        waiting = asyncio.create_task(bus.publish(events[2]))
        await settle()
        waiting.cancel()
        with pytest.raises(asyncio.CancelledError):
            await waiting
        assert slow.stats.dropped == 1
        gate.opened.set()
    assert [e.id for e in gate.events] == [e.id for e in events[:2]]


async def test_events_published_before_start_are_delivered_after():
    record = Recorder()
    bus = MemoryBus()
    await bus.subscribe("**", record)
    await bus.publish(rack_event())
    await settle()
    assert record.events == []
    await bus.start()
    await bus.start()  # idempotent
    await settle()
    assert len(record.events) == 1
    await bus.close()


async def test_unsubscribe():
    record = Recorder()
    async with MemoryBus() as bus:
        sub = await bus.subscribe("**", record)
        await bus.publish(rack_event())
        await settle()
        await sub.close()
        await bus.publish(rack_event())
        await settle()
        assert len(record.events) == 1
        assert bus.stats() == []


async def test_a_handler_can_close_its_own_subscription():
    seen: list[CloudEvent] = []
    holder: list[Subscription] = []

    async def once(event: CloudEvent) -> None:
        seen.append(event)
        await holder[0].close()

    async with MemoryBus() as bus:
        holder.append(await bus.subscribe("**", once))
        for event in numbered(3):
            await bus.publish(event)
        await settle()
    assert len(seen) == 1


async def test_close_drains_slow_handlers():
    seen: list[CloudEvent] = []

    async def slowish(event: CloudEvent) -> None:
        await asyncio.sleep(0.001)
        seen.append(event)

    bus = MemoryBus()
    await bus.start()
    await bus.subscribe("**", slowish)
    for event in numbered(20):
        await bus.publish(event)
    await bus.close(drain=True, timeout=5)
    assert len(seen) == 20


async def test_close_drain_is_bounded_by_its_timeout(caplog):
    gate = Gate()
    bus = MemoryBus()
    await bus.start()
    sub = await bus.subscribe("**", gate)
    for event in numbered(3):
        await bus.publish(event)
    await bus.close(timeout=0.05)
    assert gate.events == []
    assert sub.stats.dropped == 2  # one was in the handler when it was cancelled
    assert "undelivered" in caplog.text


async def test_close_without_drain_drops_what_is_queued():
    record = Recorder()
    bus = MemoryBus()
    sub = await bus.subscribe("**", record)
    for event in numbered(4):
        await bus.publish(event)
    await bus.close(drain=False)
    assert record.events == [] and sub.stats.dropped == 4


async def test_nothing_after_close():
    bus = MemoryBus()
    await bus.start()
    await bus.close()
    await bus.close()  # idempotent
    with pytest.raises(BusClosed, match="cannot publish io.fabrica.rack.created: .*closed"):
        await bus.publish(rack_event())
    with pytest.raises(BusClosed):
        await bus.subscribe("**", Recorder())
    with pytest.raises(BusClosed):
        bus.stream("**")
    with pytest.raises(BusClosed):
        await bus.start()


async def test_invalid_patterns_are_refused_on_subscribe():
    async with MemoryBus() as bus:
        with pytest.raises(ValueError, match="last segment"):
            await bus.subscribe("**.created", Recorder())
        with pytest.raises(ValueError, match="empty segment"):
            bus.stream("io..x")


async def test_a_handler_that_is_not_async_counts_as_failed(caplog):
    async with MemoryBus() as bus:
        sub = await bus.subscribe("**", lambda event: None)  # type: ignore[arg-type,return-value]
        await bus.publish(rack_event())
        await settle()
        assert sub.stats.failed == 1


# -- streams -----------------------------------------------------------------------------


async def test_stream_yields_matching_events_in_order():
    events = numbered(3)
    async with MemoryBus() as bus, bus.stream("io.fabrica.rack.*") as stream:
        await bus.publish(events[0])
        await bus.publish(numbered(1, kind="Device")[0])
        await bus.publish(events[1])
        await bus.publish(events[2])
        got = [await anext(stream) for _ in range(3)]
        assert got == events
        assert stream.stats.delivered == 3 and stream.stats.pending == 0
    assert stream.stats.mode == "stream"


async def test_stream_drops_the_oldest_when_its_reader_lags():
    events = numbered(5)
    async with MemoryBus() as bus:
        stream = bus.stream("**", maxsize=3)
        for event in events:
            await asyncio.wait_for(bus.publish(event), 1)  # never waits for a stream
        assert stream.stats.dropped == 2
        assert [await anext(stream) for _ in range(3)] == events[2:]
        await stream.close()


async def test_stream_ends_after_the_bus_closes():
    events = numbered(2)
    bus = MemoryBus()
    await bus.start()
    stream = bus.stream()
    for event in events:
        await bus.publish(event)
    await bus.close()
    assert [e async for e in stream] == events


async def test_leaving_a_stream_unsubscribes_it():
    async with MemoryBus() as bus:
        async with bus.stream("**"):
            assert len(bus.stats()) == 1
        assert bus.stats() == []


# -- server-sent events ------------------------------------------------------------------


async def test_sse_framing():
    async with MemoryBus() as bus:
        frames = sse_stream(bus, "io.fabrica.rack.*", heartbeat=10)
        assert await anext(frames) == b": connected\n\n"
        event = rack_event(resource=RACK)
        await bus.publish(numbered(1, kind="Device")[0])
        await bus.publish(event)
        chunk = await anext(frames)
        assert chunk.endswith(b"\n\n")
        lines = chunk[:-2].decode().split("\n")
        assert lines == [f"id: {event.id}", f"data: {event.to_json()}"]
        assert CloudEvent.from_json(lines[1].removeprefix("data: ")) == event
        await frames.aclose()  # type: ignore[attr-defined]
        assert bus.stats() == []


async def test_sse_heartbeat():
    async with MemoryBus() as bus:
        frames = sse_stream(bus, heartbeat=0.01)
        assert await anext(frames) == b": connected\n\n"
        assert await anext(frames) == b": keepalive\n\n"
        await bus.publish(rack_event())
        while (chunk := await anext(frames)) == b": keepalive\n\n":
            pass
        assert chunk.startswith(b"id: ")
        await frames.aclose()  # type: ignore[attr-defined]


async def test_sse_ends_when_the_bus_closes():
    bus = MemoryBus()
    await bus.start()
    frames = sse_stream(bus)
    await anext(frames)
    await bus.close()
    assert [chunk async for chunk in frames] == []


async def test_sse_refuses_bad_patterns_before_streaming():
    bus = MemoryBus()
    with pytest.raises(ValueError, match="'\\*\\*' is only allowed as the last segment"):
        sse_stream(bus, "io.**.created")
    with pytest.raises(ValueError, match="heartbeat"):
        sse_stream(bus, "**", heartbeat=0)
    assert bus.stats() == []


def test_format_sse_leaves_out_an_id_that_would_break_framing():
    event = CloudEvent(type="t", source="s", id="a\nb", data={"k": "line\nbreak"})
    assert format_sse(event) == f"data: {event.to_json()}\n\n".encode()
