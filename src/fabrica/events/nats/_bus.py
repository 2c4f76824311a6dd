"""`NatsBus`: the event bus shared by several processes through NATS JetStream.

Every event is one message in the service's JetStream stream (`JetStream`, created or
reused at `start`): the subject is the event's ``type`` (see `_subjects`) and the payload
its structured CloudEvent JSON (`CloudEvent.to_json`), with the header ``Nats-Msg-Id`` =
its ``id``. Any NATS client can read what Fabrica publishes, and publish events Fabrica's
subscribers receive. `publish` returns once JetStream has stored the event (a re-sent one
is dropped as a duplicate) and raises `EventBusError` when it could not say so.

Local subscribers read their events back from the stream like those of any other process,
so every process sees every process's events, in the stream's order. Each subscription
reads from the moment it subscribes, through its own pull consumer that resumes after the
last event it delivered when NATS or the consumer was lost (`_reader`): an outage delays
events, it skips none. Sharing reconcilers between processes is done with shard leases,
not here: every subscription sees every event it matches.

`start` connects, and fails with `EventBusError` naming the URL when the server cannot be
reached (two attempts, ``connect_timeout`` each, ``reconnect_time_wait`` apart). Once
connected the client reconnects forever (every ``reconnect_time_wait`` seconds). Events
published before `start` are held (at most ``queue_size``) and sent once it has connected.
`close(drain=True)` lets every subscription read what the stream holds for it, delivers
what is queued, all within its timeout, and then closes the connection.
"""

from __future__ import annotations

import contextlib
import logging
from typing import Any

import nats.errors
from nats.aio.client import Client
from nats.js import JetStreamContext

from .._broker_bus import BrokerBus
from .._bus import BusClosed, EventBusError, EventStream, Handler
from .._cloudevent import CloudEvent
from ._jetstream import JetStream, ensure_stream
from ._subjects import subject_of, subjects_of
from ._subscriptions import NatsEventStream, NatsSubscription

__all__ = ["NatsBus"]

log = logging.getLogger("fabrica.events")

_Sub = NatsSubscription | NatsEventStream


class NatsBus(BrokerBus[_Sub]):
    """An `EventBus` on NATS JetStream: events on subjects equal to their types, kept in
    the stream `jetstream` describes.

    `url` is one NATS URL or several separated by commas (a cluster). `queue_size` bounds
    each handler's queue, `stream_size` is a stream's default bound, and `publish_timeout`
    is how long an arriving event waits for room in a full handler queue before it is
    dropped for that handler; it also bounds JetStream requests (a publish's
    acknowledgement). `name` names the connection on the server (default ``fabrica``);
    `connect_timeout` and `reconnect_time_wait` tune connecting. Use
    ``async with NatsBus(url, jetstream=...) as bus:`` or call `start` and `close`; see the
    module docstring for the delivery semantics.
    """

    def __init__(
        self,
        url: str = "nats://127.0.0.1:4222",
        *,
        jetstream: JetStream,
        queue_size: int = 1000,
        stream_size: int = 100,
        publish_timeout: float = 5.0,
        name: str | None = None,
        connect_timeout: float = 2.0,
        reconnect_time_wait: float = 0.5,
    ) -> None:
        super().__init__(queue_size, stream_size)
        if publish_timeout <= 0 or connect_timeout <= 0 or reconnect_time_wait < 0:
            raise ValueError("timeouts must be positive numbers of seconds")
        self._servers = [u.strip() for u in url.split(",") if u.strip()]
        if not self._servers:
            raise ValueError("a NATS URL is required")
        self.url, self.jetstream = url, jetstream
        self._publish_timeout = publish_timeout
        self._name = name or "fabrica"
        self._connect_timeout, self._reconnect_time_wait = connect_timeout, reconnect_time_wait
        self._nc: Client | None = None
        self._last_error: BaseException | None = None
        self._quiet = False  # connection errors already reported since the last (re)connect

    subject = staticmethod(subject_of)
    subjects = staticmethod(subjects_of)

    @property
    def request_timeout(self) -> float:
        """How long a JetStream request (a publish's acknowledgement...) may take."""
        return self._publish_timeout

    @property
    def connected(self) -> bool:
        """Whether the connection to NATS is up right now (False while reconnecting)."""
        return self._nc is not None and self._nc.is_connected

    async def publish(self, event: CloudEvent) -> None:
        """Store `event` in the stream on the subject `event.type`; returns once stored.

        ValueError if the type cannot be a NATS subject; `BusClosed` after close;
        `EventBusError` if JetStream did not acknowledge it (the caller may re-send it).
        """
        await super().publish(event)

    def stream(self, pattern: str = "**", *, maxsize: int | None = None,
               after: str | None = None) -> EventStream:
        """A bounded iterator of matching events; its reader waits when it is full.

        Its consumer is made in the background: enter it (``async with``) to wait until it
        reads. With `after` (an event id), it reads the stream from right after that
        event, then on live, without gap or duplicate.
        """
        return super().stream(pattern, maxsize=maxsize, after=after)

    # -- the transport (see BrokerBus) ----------------------------------------------------

    @property
    def _started(self) -> bool:
        return self._nc is not None

    async def _connect_broker(self) -> None:
        nc = await self._connect()
        try:
            await ensure_stream(nc.jetstream(timeout=self.request_timeout), self.jetstream,
                                self.url)
        except BaseException:
            await nc.close()
            raise
        self._nc = nc

    async def _disconnect_broker(self, deadline: float) -> None:
        if self._nc is not None:
            await self._disconnect(self._nc)

    def _new_subscription(self, handler: Handler, name: str, pattern: str) -> _Sub:
        return NatsSubscription(self._forget, handler, name, pattern, self._queue_size,
                                self._publish_timeout)

    def _new_stream(self, pattern: str, size: int, after: str | None) -> _Sub:
        return NatsEventStream(self._forget, pattern, size, after)

    async def _attach(self, sub: _Sub) -> None:
        await sub.attach(self._js(), self.jetstream)

    def _check_pattern(self, pattern: str) -> None:
        subjects_of(pattern)

    def _check_event(self, event: CloudEvent) -> None:
        subject_of(event.type)

    def _attach_failure(self, stream: _Sub, exc: Exception) -> str:
        return f"cannot subscribe {stream.name} on NATS at {self.url}: {exc}"

    # -- internals ------------------------------------------------------------------------

    def _js(self) -> JetStreamContext:
        assert self._nc is not None
        return self._nc.jetstream(timeout=self.request_timeout)

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

    async def _disconnect(self, nc: Client) -> None:
        if not nc.is_closed:
            try:
                await nc.close()
            except Exception as exc:  # nats-py cannot flush to a connection already lost
                log.warning("closing the NATS connection to %s: %r", self.url, exc)

    async def _send(self, event: CloudEvent) -> None:
        try:
            # Stored once the server answers; the id makes a re-sent event a no-op.
            await self._js().publish(event.type, event.to_json().encode(),
                                     stream=self.jetstream.stream,
                                     headers={"Nats-Msg-Id": event.id})
        except (TimeoutError, nats.errors.Error) as exc:
            closing = nats.errors.ConnectionClosedError | nats.errors.ConnectionDrainingError
            if isinstance(exc, closing):
                raise BusClosed(f"cannot publish {event.type}: the event bus is closed") from exc
            raise EventBusError(
                f"cannot publish {event.type} (id {event.id}) to NATS at {self.url}: {exc!r}"
            ) from exc

    async def _on_error(self, exc: Exception) -> None:
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
