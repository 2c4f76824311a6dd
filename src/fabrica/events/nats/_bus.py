"""`NatsBus`: the event bus shared by several processes through a NATS server.

Every event travels as one NATS message: the subject is the event's ``type`` and the payload
its structured CloudEvent JSON (`CloudEvent.to_json`), so any NATS client can read what
Fabrica publishes and publish events Fabrica's subscribers receive. `publish` only sends;
local subscribers receive their events back from the server like those of any other
process, so every process on one NATS server sees every process's events, in one order.

Patterns map onto NATS subjects (`NatsBus.subjects`): ``*`` is NATS ``*``; ``P.**`` is the
pair ``P`` and ``P.>`` (NATS ``>`` needs at least one token, fabrica ``**`` matches none
too); ``**`` alone is ``>``. Event types must therefore be valid NATS subjects: non-empty
dot-separated tokens without whitespace, ``*`` or ``>``; `publish` refuses others with a
ValueError, as `subscribe` refuses such patterns.

Delivery is `MemoryBus`'s, reused rather than copied: each subscription is fed, by its own
NATS subscription(s), into a one-subscriber `MemoryBus` of its own, which gives it a bounded
queue, its own delivery task, logged and counted failures, drop-oldest for streams and a
drain on close. Where MemoryBus makes a publisher wait for a full handler queue, here the
NATS subscription waits (at most ``publish_timeout`` seconds, then the event is dropped for
that handler and counted): remote publishers are never slowed, and the NATS client buffers
what arrives meanwhile (what overflows that buffer is counted as dropped too).

Ordering follows NATS: a subscriber gets the events of one publishing connection in publish
order; events of different processes interleave as the server received them. The one
exception: the two subjects of a ``P.**`` pattern are two NATS subscriptions, so an event of
type exactly ``P`` is not ordered against the events below ``P``.

``subscribe(..., queue_group="name")`` joins a NATS queue group: of all the subscriptions
in one group, across every process connected to the server, exactly one receives each
event. Give the reconcilers of several server processes one group so that each event is
reconciled once; subscriptions without a group (each process's own) still see everything.

With ``jetstream=JetStream(...)`` (what ``serve --events-bus nats`` uses) events are kept:
`start` creates or reuses the service's stream (see `_jetstream`), `publish` returns once
JetStream has stored the event (``Nats-Msg-Id`` = its id, so a re-send is dropped) and
raises `EventBusError` when it could not say so, and subscriptions and streams read the
stream from the moment they subscribe, each through its own pull consumer that resumes
after the last event it delivered when NATS or the consumer was lost (`StreamReader`):
an outage delays their events, it skips none. Queue-group subscriptions stay core NATS.

`start` connects, and fails with `EventBusError` naming the URL when the server cannot be
reached (two attempts, ``connect_timeout`` each, ``reconnect_time_wait`` apart). Once
connected the client reconnects forever (every ``reconnect_time_wait`` seconds) and
re-subscribes by itself; events published meanwhile are buffered by the NATS client (up to
2 MiB, beyond which `publish` raises `EventBusError`). Events published before `start` are
held (at most ``queue_size``) and sent once it has connected. `close(drain=True)` drains the
NATS connection (what was published reaches the server, what the server sent is received)
and then delivers what is queued, all within its timeout.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import math
from collections import deque
from types import TracebackType
from typing import Any, Self, cast

import nats.errors
from nats.aio.client import Client
from nats.aio.msg import Msg
from nats.aio.subscription import Subscription as NatsSubscription

from ._bus import (
    BusClosed,
    BusContext,
    EventBusError,
    EventStream,
    Handler,
    Subscription,
    SubscriptionStats,
)
from ._cloudevent import CloudEvent
from ._jetstream import (
    JetStream,
    StreamReader,
    ensure_stream,
    find_sequence,
    intersect_subjects,
)
from ._memory import MemoryBus, _StreamSubscription
from ._patterns import TypePattern, compile_pattern

__all__ = ["NatsBus"]

log = logging.getLogger("fabrica.events")

_NOT_EVENTS = ("_INBOX.", "$")  # NATS's request-reply and system subjects


def _check_subject(text: str, what: str) -> list[str]:
    tokens = text.split(".")
    if "" in tokens:
        raise ValueError(f"{what} {text!r} cannot be a NATS subject: it has an empty segment")
    for char in text:
        if char.isspace() or not char.isprintable():
            raise ValueError(f"{what} {text!r} cannot be a NATS subject: {char!r} is not allowed")
    return tokens


class _Link:
    """One subscription's NATS side: its subjects feed its private, one-subscriber MemoryBus."""

    def __init__(
        self,
        bus: NatsBus,
        pattern: TypePattern,
        local: MemoryBus,
        inner: Subscription,
        queue_group: str | None,
    ) -> None:
        self._bus, self._pattern, self._local, self._inner = bus, pattern, local, inner
        self.queue_group = queue_group
        self.subjects = NatsBus.subjects(pattern.pattern)
        self.lost = 0  # dropped by the NATS client before reaching the queue (slow consumer)
        self.attached = False
        self.start_seq: int | None = None  # JetStream: where to start (None: after the last)
        self._nats: list[NatsSubscription] = []
        self._readers: list[StreamReader] = []
        self._tasks: list[asyncio.Task[None]] = []
        self._undecodable = 0

    @property
    def name(self) -> str:
        return self._inner.name

    @property
    def pattern(self) -> str:
        return self._pattern.pattern

    @property
    def local(self) -> MemoryBus:
        return self._local

    @property
    def stats(self) -> SubscriptionStats:
        stats = self._inner.stats
        return dataclasses.replace(stats, dropped=stats.dropped + self.lost) if self.lost else stats

    async def close(self) -> None:
        """End the subscription: stop its NATS interest; what is still queued is dropped."""
        self._bus._forget(self)
        await self.detach()
        await self._local.close(drain=False)

    async def attach(self, nc: Client) -> None:
        if self.attached:
            return
        self.attached = True
        await self._local.start()
        setting = self._bus.jetstream
        if setting is not None and self.queue_group is None:
            await self._attach_stream(nc, setting)
            return
        for subject in self.subjects:
            sub = await nc.subscribe(subject, queue=self.queue_group or "", cb=self._receive)
            self._nats.append(sub)

    async def _attach_stream(self, nc: Client, setting: JetStream) -> None:
        """Read the service's stream: the part of it this pattern can match."""
        filters = [f for subject in self.subjects for held in setting.subjects
                   if (f := intersect_subjects(subject, held)) is not None]
        if not filters:
            log.warning("subscriber %s (%s) matches nothing in JetStream stream %s (%s)",
                        self.name, self.pattern, setting.stream, ", ".join(setting.subjects))
        js = nc.jetstream(timeout=self._bus.request_timeout)
        for subject in filters:
            reader = StreamReader(js, setting, subject, self._receive, name=self.name,
                                  start_seq=self.start_seq)
            await reader.open()
            self._readers.append(reader)
            self._tasks.append(asyncio.create_task(
                reader.run(), name=f"fabrica.events:{self.name}:{subject}"))

    async def stop_reading(self) -> None:
        """Stop the JetStream readers (what they fetched is delivered; the rest stays)."""
        tasks, self._tasks = self._tasks, []
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        readers, self._readers = self._readers, []
        for reader in readers:
            await reader.close()

    async def detach(self) -> None:
        await self.stop_reading()
        subs, self._nats = self._nats, []
        for sub in subs:
            with contextlib.suppress(nats.errors.Error):
                await sub.unsubscribe()

    def owns(self, sub: Any) -> bool:
        return any(s is sub for s in self._nats)

    async def _receive(self, msg: Msg) -> None:
        try:
            event = CloudEvent.from_json(msg.data)
        except ValueError as exc:
            self._ignore(msg.subject, f"not a structured CloudEvent ({exc})")
            return
        if event.type != msg.subject:
            self._ignore(msg.subject, f"its type {event.type!r} is not its subject")
            return
        await self._before_delivery()
        with contextlib.suppress(BusClosed):  # the subscription closed meanwhile
            await self._local.publish(event)

    async def _before_delivery(self) -> None:
        """A hook: streams read from JetStream wait here for room (see `_NatsStream`)."""

    def _ignore(self, subject: str, why: str) -> None:
        if subject.startswith(_NOT_EVENTS):  # replies and system traffic ``**`` also sees
            log.debug("subscriber %s ignores a NATS message on %s", self.name, subject)
            return
        self._undecodable += 1
        level = logging.WARNING if self._undecodable == 1 else logging.DEBUG
        log.log(level, "subscriber %s ignores a NATS message on %s: %s", self.name, subject, why)


class _NatsSubscription(_Link):
    """A handler subscription (`Subscription`)."""


class _NatsStream(_Link):
    """A stream (`EventStream`); its NATS interest is live once ``async with`` has entered.

    Started `after` an event id, it finds that event in the JetStream stream when it
    attaches and reads from the next one on; without JetStream, or when the stream no
    longer holds it, it reads from now and says so (``resume_failed``).
    """

    def __init__(
        self, bus: NatsBus, pattern: TypePattern, local: MemoryBus, inner: EventStream,
        after: str | None,
    ) -> None:
        super().__init__(bus, pattern, local, inner, None)
        self._events = inner
        self.after = after
        self._resume_failed = False
        self._lost_reported = 0
        self.ready: asyncio.Task[BaseException | None] | None = None

    @property
    def resume_failed(self) -> bool:
        return self._resume_failed

    def take_missed(self) -> int:
        lost, self._lost_reported = self.lost - self._lost_reported, self.lost
        return self._events.take_missed() + lost

    async def attach(self, nc: Client) -> None:
        after, self.after = self.after, None  # found once; a re-attach resumes by itself
        if after is not None and not self.attached:
            found = await self._find(nc, after)
            self._resume_failed = found is None
            if found is not None:
                self.start_seq = found + 1
        await super().attach(nc)

    async def _find(self, nc: Client, event_id: str) -> int | None:
        setting = self._bus.jetstream
        if setting is None:
            return None  # core NATS keeps nothing to resume from
        try:
            return await find_sequence(nc.jetstream(timeout=self._bus.request_timeout),
                                       setting, event_id)
        except (TimeoutError, nats.errors.Error) as exc:
            log.warning("subscriber %s cannot look up event %s in JetStream stream %s: %r",
                        self.name, event_id, setting.stream, exc)
            return None

    async def _before_delivery(self) -> None:
        """Read from JetStream, a stream waits for its reader instead of evicting: the
        events stay in JetStream meanwhile, so a slow reader is late, never skipped."""
        if self._bus.jetstream is not None:
            await cast(_StreamSubscription, self._events).wait_room()

    def __aiter__(self) -> Self:
        return self

    async def __anext__(self) -> CloudEvent:
        return await anext(self._events)

    async def next_batch(self, timeout: float | None = None) -> list[CloudEvent] | None:
        """Every event not yet read, at once (see `MemoryBus`'s streams)."""
        return await self._events.next_batch(timeout)

    async def __aenter__(self) -> Self:
        ready = self.ready
        if ready is not None:
            await asyncio.wait({ready})  # never raises, even if the bus's close cancelled it
            if not ready.cancelled() and (error := ready.result()) is not None:
                raise EventBusError(f"cannot subscribe to {self.pattern!r}: {error}") from error
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()

    async def close(self) -> None:
        if self.ready is not None and not self.ready.done():
            self.ready.cancel()
        await super().close()


class NatsBus(BusContext):
    """An `EventBus` on a NATS server: events on subjects equal to their types.

    `url` is one NATS URL or several separated by commas (a cluster). `queue_size` bounds
    each handler's queue, `stream_size` is a stream's default bound, and `publish_timeout`
    is how long an arriving event waits for room in a full handler queue before it is
    dropped for that handler (it also bounds a publish that must flush a full NATS buffer).
    `name` names the connection on the server (default ``fabrica``); `connect_timeout` and
    `reconnect_time_wait` tune connecting. Use ``async with NatsBus(url) as bus:`` or call
    `start` and `close`; see the module docstring for the delivery semantics.
    """

    def __init__(
        self,
        url: str = "nats://127.0.0.1:4222",
        *,
        queue_size: int = 1000,
        stream_size: int = 100,
        publish_timeout: float = 5.0,
        name: str | None = None,
        connect_timeout: float = 2.0,
        reconnect_time_wait: float = 0.5,
        jetstream: JetStream | None = None,
    ) -> None:
        if queue_size < 1 or stream_size < 1:
            raise ValueError("queue sizes must be at least 1")
        if publish_timeout <= 0 or connect_timeout <= 0 or reconnect_time_wait < 0:
            raise ValueError("timeouts must be positive numbers of seconds")
        self._servers = [u.strip() for u in url.split(",") if u.strip()]
        if not self._servers:
            raise ValueError("a NATS URL is required")
        self.url = url
        self._queue_size, self._stream_size = queue_size, stream_size
        self._publish_timeout = publish_timeout
        self._name = name or "fabrica"
        self.jetstream = jetstream
        self._connect_timeout, self._reconnect_time_wait = connect_timeout, reconnect_time_wait
        self._nc: Client | None = None
        self._links: list[_Link] = []
        self._early: deque[CloudEvent] = deque()
        self._start_lock = asyncio.Lock()
        self._closed = False
        self._last_error: BaseException | None = None
        self._quiet = False  # connection errors already reported since the last (re)connect

    # -- the mapping onto NATS ------------------------------------------------------------

    @staticmethod
    def subject(event_type: str) -> str:
        """The NATS subject of `event_type` (the type itself); ValueError if it cannot be one."""
        for token in _check_subject(event_type, "event type"):
            if "*" in token or ">" in token:
                raise ValueError(
                    f"event type {event_type!r} cannot be a NATS subject: "
                    "'*' and '>' are NATS wildcards"
                )
        return event_type

    @staticmethod
    def subjects(pattern: str) -> tuple[str, ...]:
        """The NATS subjects that together match what `pattern` matches (ValueError if invalid).

        ``a.*.c`` -> ``a.*.c``; ``a.**`` -> ``a`` and ``a.>``; ``**`` -> ``>``.
        """
        compile_pattern(pattern)
        tokens = _check_subject(pattern, "event type pattern")
        if any(">" in token for token in tokens):
            raise ValueError(f"invalid event type pattern {pattern!r}: '>' is not allowed")
        if tokens[-1] != "**":
            return (pattern,)
        if len(tokens) == 1:
            return (">",)
        prefix = ".".join(tokens[:-1])
        return (prefix, f"{prefix}.>")

    # -- the EventBus protocol ------------------------------------------------------------

    @property
    def closed(self) -> bool:
        return self._closed

    @property
    def request_timeout(self) -> float:
        """How long a JetStream request (a publish's acknowledgement...) may take."""
        return self._publish_timeout

    @property
    def connected(self) -> bool:
        """Whether the connection to NATS is up right now (False while reconnecting)."""
        return self._nc is not None and self._nc.is_connected

    async def start(self) -> None:
        """Connect, subscribe what was subscribed so far and send what was published so far.

        Raises `EventBusError` naming the URL when the server cannot be reached.
        """
        if self._closed:
            raise BusClosed("the event bus is closed and cannot be started again")
        async with self._start_lock:
            if self._nc is None:
                nc = await self._connect()
                if self.jetstream is not None:
                    try:
                        await ensure_stream(nc.jetstream(timeout=self.request_timeout),
                                            self.jetstream, self.url)
                    except BaseException:
                        await nc.close()
                        raise
                self._nc = nc
            nc = self._nc
            for link in list(self._links):
                await link.attach(nc)
            await self._flush()
            while self._early and not self._closed:
                await self._send(nc, self._early.popleft())

    async def publish(self, event: CloudEvent) -> None:
        """Send `event` to NATS on the subject `event.type`.

        ValueError if the type cannot be a NATS subject; `BusClosed` after close;
        `EventBusError` if the NATS client refuses it (payload too large, buffer full).
        """
        if self._closed:
            raise BusClosed(f"cannot publish {event.type}: the event bus is closed")
        self.subject(event.type)
        if self._nc is None:
            if len(self._early) >= self._queue_size:
                dropped = self._early.popleft()
                log.error(
                    "event %s (id %s) dropped: %d events published before the bus started",
                    dropped.type,
                    dropped.id,
                    self._queue_size,
                )
            self._early.append(event)
            return
        await self._send(self._nc, event)

    async def subscribe(
        self,
        pattern: str,
        handler: Handler,
        *,
        name: str | None = None,
        queue_group: str | None = None,
    ) -> Subscription:
        """Call `handler` for each event whose type matches `pattern` (ValueError if invalid).

        With `queue_group`, this subscription shares the events with every other member of
        that NATS queue group (in this process or any other): each event goes to one member.
        Once this returns on a started bus, the server knows the subscription.
        """
        self._open_check(pattern)
        if queue_group is not None:
            _check_subject(queue_group, "queue group")
        local = self._local(self._queue_size)
        inner = await local.subscribe(pattern, handler, name=name)
        link = _NatsSubscription(self, compile_pattern(pattern), local, inner, queue_group)
        self._links.append(link)
        if self._nc is not None:
            await link.attach(self._nc)
            await self._flush()
        return link

    def stream(self, pattern: str = "**", *, maxsize: int | None = None,
               after: str | None = None) -> EventStream:
        """A bounded iterator of matching events that keeps the newest when its reader lags.

        Its NATS subscription is made in the background: enter it (``async with``) to wait
        until the server knows it. With `after` (an event id) and JetStream, it reads the
        stream from right after that event, then on live, without gap or duplicate.
        """
        self._open_check(pattern)
        local = self._local(self._stream_size)
        inner = local.stream(pattern, maxsize=maxsize)
        link = _NatsStream(self, compile_pattern(pattern), local, inner, after)
        self._links.append(link)
        if self._nc is not None:
            link.ready = asyncio.create_task(
                self._attach_quietly(link, self._nc), name=f"fabrica.events:{link.name}"
            )
        return link

    async def close(self, drain: bool = True, timeout: float = 5.0) -> None:
        """Stop. With `drain`, first let what was published reach its subscribers: the NATS
        connection is drained, then the queues are delivered, all within `timeout` seconds."""
        if self._closed:
            return
        self._closed = True
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        links = list(self._links)
        for link in links:
            if isinstance(link, _NatsStream) and link.ready is not None:
                link.ready.cancel()
        if self._early:
            log.warning("event bus closed before it started: %d events unsent", len(self._early))
            self._early.clear()
        async with self._start_lock:
            await asyncio.gather(*(link.stop_reading() for link in links))
            if self._nc is not None:
                await self._disconnect(self._nc, drain, timeout)
        remaining = max(0.0, deadline - loop.time())
        await asyncio.gather(*(link.local.close(drain, remaining) for link in links))
        self._links.clear()

    def stats(self) -> list[SubscriptionStats]:
        return [link.stats for link in self._links]

    # -- internals ------------------------------------------------------------------------

    def _open_check(self, pattern: str) -> None:
        if self._closed:
            raise BusClosed(f"cannot subscribe to {pattern!r}: the event bus is closed")
        self.subjects(pattern)

    def _local(self, size: int) -> MemoryBus:
        # One subscriber's queue: JetStream, not this, is what a stream resumes from.
        return MemoryBus(size, stream_size=size, publish_timeout=self._publish_timeout,
                         history=False)

    def _forget(self, link: _Link) -> None:
        if link in self._links:
            self._links.remove(link)

    async def _attach_quietly(self, link: _Link, nc: Client) -> BaseException | None:
        try:
            await link.attach(nc)
            await self._flush()
        except Exception as exc:  # reported by the stream's __aenter__
            log.error("cannot subscribe %s on NATS at %s: %s", link.name, self.url, exc)
            return exc
        return None

    async def _connect(self) -> Client:
        nc = Client()
        self._last_error = None
        options: dict[str, Any] = {
            "servers": self._servers,
            "name": self._name,
            "connect_timeout": self._connect_timeout,
            "reconnect_time_wait": self._reconnect_time_wait,
            # Two attempts at start (nats-py's least); after that, reconnect forever (below).
            "allow_reconnect": True,
            "max_reconnect_attempts": 1,
            "flush_timeout": self._publish_timeout,
            "error_cb": self._on_error,
            "disconnected_cb": self._on_disconnected,
            "reconnected_cb": self._on_reconnected,
        }
        try:
            await nc.connect(**options)
        except (OSError, TimeoutError, nats.errors.Error) as exc:
            with contextlib.suppress(Exception):
                await nc.close()
            cause = self._last_error or exc
            raise EventBusError(f"cannot connect to NATS at {self.url}: {cause}") from cause
        nc.options["max_reconnect_attempts"] = -1  # nats-py reads it at each reconnect
        log.info("event bus connected to NATS at %s", self.url)
        return nc

    async def _disconnect(self, nc: Client, drain: bool, timeout: float) -> None:
        if drain and nc.is_connected:
            try:
                async with asyncio.timeout(timeout):
                    await nc.drain()
            except (TimeoutError, nats.errors.Error) as exc:
                log.warning("draining the NATS connection to %s failed: %r", self.url, exc)
        if not nc.is_closed:
            try:
                await nc.close()
            except Exception as exc:  # nats-py cannot flush to a connection already lost
                log.warning("closing the NATS connection to %s: %r", self.url, exc)

    async def _send(self, nc: Client, event: CloudEvent) -> None:
        try:
            if self.jetstream is None:
                await nc.publish(event.type, event.to_json().encode())
                return
            # Stored once the server answers; the id makes a re-sent event a no-op.
            await nc.jetstream(timeout=self.request_timeout).publish(
                event.type, event.to_json().encode(), stream=self.jetstream.stream,
                headers={"Nats-Msg-Id": event.id})
        except (TimeoutError, nats.errors.Error) as exc:
            closing = nats.errors.ConnectionClosedError | nats.errors.ConnectionDrainingError
            if isinstance(exc, closing):
                raise BusClosed(f"cannot publish {event.type}: the event bus is closed") from exc
            raise EventBusError(
                f"cannot publish {event.type} (id {event.id}) to NATS at {self.url}: {exc!r}"
            ) from exc

    async def _flush(self) -> None:
        """Make sure the server has processed what was sent (subscriptions included)."""
        nc = self._nc
        if nc is None or not nc.is_connected:
            return  # reconnecting: nats-py re-subscribes everything once it is back
        try:
            await nc.flush(timeout=max(1, math.ceil(self._publish_timeout)))
        except (TimeoutError, nats.errors.Error) as exc:
            log.warning("no answer from NATS at %s: %r", self.url, exc)

    async def _on_error(self, exc: Exception) -> None:
        if isinstance(exc, nats.errors.SlowConsumerError):
            for link in self._links:
                if link.owns(exc.sub):
                    link.lost += 1
                    log.error(
                        "event %s dropped for subscriber %s: the NATS client's buffer is full",
                        exc.subject,
                        link.name,
                    )
            return
        if self._nc is None:  # still connecting: start reports the last error
            self._last_error = exc
            log.debug("connecting to NATS at %s: %r", self.url, exc)
            return
        level = logging.DEBUG if self._quiet else logging.WARNING
        self._quiet = True
        log.log(level, "NATS connection to %s: %r", self.url, exc)

    async def _on_disconnected(self) -> None:
        if not self._closed:
            log.warning("lost the connection to NATS at %s; reconnecting", self.url)

    async def _on_reconnected(self) -> None:
        self._quiet = False
        nc = self._nc
        where = nc.connected_url.netloc if nc is not None and nc.connected_url else self.url
        log.warning("reconnected to NATS at %s", where)
