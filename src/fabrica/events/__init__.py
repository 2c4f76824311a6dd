"""Events: CloudEvents 1.0 envelopes, type patterns, the event-bus seam, its memory bus
and its NATS bus.

This package stands alone (it imports neither storage nor the server): the server builds
events with `lifecycle_event` / `condition_event` after each successful write and publishes
them on an `EventBus`; reconcilers `subscribe`; ``GET /events`` serves `sse_stream`.
"""

from ._builders import LIFECYCLE_ACTIONS, condition_event, lifecycle_event
from ._bus import (
    BusClosed,
    EventBus,
    EventBusError,
    EventStream,
    Handler,
    Subscription,
    SubscriptionStats,
)
from ._cloudevent import CloudEvent, ExtensionValue, format_time
from ._memory import MemoryBus
from ._nats import NatsBus
from ._patterns import TypePattern, compile_pattern, type_matches
from ._sse import format_sse, sse_stream

__all__ = [
    "LIFECYCLE_ACTIONS",
    "BusClosed",
    "CloudEvent",
    "EventBus",
    "EventBusError",
    "EventStream",
    "ExtensionValue",
    "Handler",
    "MemoryBus",
    "NatsBus",
    "Subscription",
    "SubscriptionStats",
    "TypePattern",
    "compile_pattern",
    "condition_event",
    "format_sse",
    "format_time",
    "lifecycle_event",
    "sse_stream",
    "type_matches",
]
