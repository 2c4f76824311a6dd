"""`EventSource`: the controller's input, the lifecycle events of every resource on a bus.

It subscribes to ``PREFIX.**`` and hands each lifecycle event, parsed once into a
`ResourceEvent`, to its handler; condition events and events about no resource are
dropped here (the lifecycle event of the same write already said it). Any bus serves: the
memory bus of a single process, or NATS, where a controller in one process hears the
writes of every other.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from ..events import CloudEvent, EventBus, ResourceEvent, Subscription
from ._tracing import CAUSE

__all__ = ["EventSource"]


class EventSource:
    def __init__(self, bus: EventBus, *, event_prefix: str = "io.fabrica",
                 name: str = "reconcile-controller") -> None:
        self.bus = bus
        self.pattern = f"{event_prefix}.**"
        self.name = name
        self._subscription: Subscription | None = None

    async def start(self, handler: Callable[[ResourceEvent], Awaitable[None]]) -> None:
        async def on_event(event: CloudEvent) -> None:
            parsed = ResourceEvent.parse(event)
            if parsed is not None and parsed.is_lifecycle:
                cause = event.extensions.get("traceparent")
                token = CAUSE.set(cause if isinstance(cause, str) else None)
                try:
                    await handler(parsed)
                finally:
                    CAUSE.reset(token)

        self._subscription = await self.bus.subscribe(self.pattern, on_event, name=self.name)

    async def stop(self) -> None:
        if self._subscription is not None:
            await self._subscription.close()
            self._subscription = None
