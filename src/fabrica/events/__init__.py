"""Events: CloudEvents 1.0 envelopes, type patterns, the event-bus seam, its memory bus
and its NATS JetStream bus (the `nats` subpackage).

This package stands alone (it imports nothing else of fabrica): the store's
`ChangePublisher` builds events with `lifecycle_event` / `condition_event` after each
committed write (and `reason_event` for what a reconciler emits) and publishes them on an
`EventBus`; the reconcile controller subscribes and reads them as `ResourceEvent`s, as the
client's event watcher does; ``GET /events`` serves `sse_frames`.
"""

from ._builders import (
    LIFECYCLE_ACTIONS,
    REASON_PATTERN,
    check_reason,
    condition_event,
    lifecycle_event,
    reason_event,
)
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
from ._patterns import TypePattern, compile_pattern, type_matches
from ._resource_event import ResourceEvent
from ._sse import format_sse, sse_frames, sse_stream
from .nats import JetStream, NatsBus

__all__ = [
    "LIFECYCLE_ACTIONS",
    "REASON_PATTERN",
    "BusClosed",
    "CloudEvent",
    "check_reason",
    "EventBus",
    "EventBusError",
    "EventStream",
    "ExtensionValue",
    "Handler",
    "JetStream",
    "MemoryBus",
    "NatsBus",
    "ResourceEvent",
    "Subscription",
    "SubscriptionStats",
    "TypePattern",
    "compile_pattern",
    "condition_event",
    "format_sse",
    "format_time",
    "lifecycle_event",
    "reason_event",
    "sse_frames",
    "sse_stream",
    "type_matches",
]
