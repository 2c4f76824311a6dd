"""The event-bus seam: what the server publishes to and what reconcilers subscribe on.

A bus is a seam handed to the server and the controller, with `MemoryBus` as the in-process
default and NATS for several processes. Every method that may touch the network is async.
Two ways to consume:

- `EventBus.subscribe` runs an async handler for each matching event, in publish order,
  on the bus's own task; a handler that raises is logged and counted, never retried.
- `EventBus.stream` gives a bounded async iterator for a consumer that pulls at its own
  pace (``GET /events``); use it as ``async with bus.stream(p) as events:``.

Both report `SubscriptionStats` (delivered, failed, dropped, pending) for metrics.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from types import TracebackType
from typing import Literal, Protocol, Self, runtime_checkable

from ._cloudevent import CloudEvent

__all__ = [
    "BusClosed",
    "BusContext",
    "EventBus",
    "EventBusError",
    "EventStream",
    "Handler",
    "Subscription",
    "SubscriptionStats",
]

Handler = Callable[[CloudEvent], Awaitable[None]]


class EventBusError(RuntimeError):
    """Base of the errors an event bus raises on purpose."""


class BusClosed(EventBusError):
    """The bus was closed: nothing can be published or subscribed any more."""


@dataclass(frozen=True, slots=True)
class SubscriptionStats:
    """A snapshot of one subscription's counters.

    ``delivered``: handler calls that returned, or events a stream yielded; ``failed``:
    handler calls that raised; ``dropped``: events this subscriber will never see (queue
    full, or undelivered when it closed); ``pending``: events queued right now.
    """

    name: str
    pattern: str
    mode: Literal["handler", "stream"]
    delivered: int
    failed: int
    dropped: int
    pending: int


@runtime_checkable
class Subscription(Protocol):
    """A live subscription; `close` ends it (events still queued for it are dropped)."""

    @property
    def name(self) -> str: ...

    @property
    def pattern(self) -> str: ...

    @property
    def stats(self) -> SubscriptionStats: ...

    async def close(self) -> None: ...


@runtime_checkable
class EventStream(Subscription, Protocol):
    """A subscription read as an async iterator; it ends when it or its bus is closed."""

    @property
    def resume_failed(self) -> bool:
        """Asked to start after an event (`EventBus.stream`'s `after`) the bus no longer
        holds: it started from now instead, and its reader may have missed events."""
        ...

    def take_missed(self) -> int:
        """How many events this stream lost since the last call because its reader fell
        behind (they were evicted unread): a reader tells its client so."""
        ...

    def __aiter__(self) -> Self: ...

    async def __anext__(self) -> CloudEvent: ...

    async def next_batch(self, timeout: float | None = None) -> list[CloudEvent] | None:
        """Every event not yet read (at least one), [] after `timeout` seconds without any,
        None once the stream has ended: a reader of many events wakes once per batch."""
        ...

    async def __aenter__(self) -> Self: ...

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None: ...


@runtime_checkable
class EventBus(Protocol):
    """Publish CloudEvents; subscribe to them by type pattern (see `compile_pattern`)."""

    async def start(self) -> None:
        """Begin delivering; idempotent."""

    async def publish(self, event: CloudEvent) -> None:
        """Hand `event` to every matching subscription; raises `BusClosed` after close."""

    async def subscribe(
        self, pattern: str, handler: Handler, *, name: str | None = None
    ) -> Subscription:
        """Call `handler` for each event whose type matches `pattern` (ValueError if invalid)."""

    def stream(self, pattern: str = "**", *, maxsize: int | None = None,
               after: str | None = None) -> EventStream:
        """A bounded iterator of the events matching `pattern` (`maxsize` None: the bus's
        default bound); it holds the newest events when its reader falls behind. With
        `after`, an event id, it starts right after that event (a reconnecting client's
        ``Last-Event-ID``) when the bus still holds it, else from now, ``resume_failed``."""

    async def close(self, drain: bool = True, timeout: float = 5.0) -> None:
        """Stop; with `drain`, first deliver what was published (for at most `timeout` s)."""

    def stats(self) -> list[SubscriptionStats]:
        """Counters of every live subscription."""


class BusContext:
    """``async with bus:`` for every bus: `start` on entry, `close` (draining) on exit."""

    async def start(self) -> None:
        raise NotImplementedError

    async def close(self, drain: bool = True, timeout: float = 5.0) -> None:
        raise NotImplementedError

    async def __aenter__(self) -> Self:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()
