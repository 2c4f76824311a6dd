"""`KafkaBus`: the event bus shared by several processes through one Kafka topic.

Every event is one record of the service's topic (created or reused at `start`, see
`_topic`), in CloudEvents' Kafka binding, structured mode (`_records`): the value is the
CloudEvent JSON, the header ``content-type`` says so, the key is the resource's uid, so
one resource's events stay in order on one partition. Any Kafka client reads them.

`publish` returns once every in-sync replica has the record (``acks=all``) and raises
`EventBusError` when it could not say so within ``publish_timeout``; the caller may send
the event again, and a record may then be there twice, with the same id. The idempotent
producer is not used: Tansu, the broker of the tests, does not support it. Publishes
made side by side (the outbox relay publishes many resources' events at once) share
produce requests: the producer batches what waits while a request is in flight.

Local subscribers read their events back from the topic like those of any other process,
so every process sees every process's events. Each subscription reads from the moment it
subscribes, through a consumer of its own that resumes after the last record it
delivered when the broker or the consumer was lost (`_reader`). Every subscription sees
every event it matches: sharing reconcilers between processes is done with leases.

`start` connects and sets the topic up, and fails with `EventBusError` naming the
bootstrap servers when it cannot. Events published before `start` are held (at most
``queue_size``) and sent once it has connected. `close(drain=True)` lets every
subscription read what the topic holds for it, delivers what is queued, all within its
timeout, and then stops the producer.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import Any

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.errors import KafkaError

from .._broker_bus import BrokerBus
from .._bus import BusClosed, EventBusError, EventStream, Handler
from .._cloudevent import CloudEvent
from .._patterns import compile_pattern
from ._records import HEADERS, encode
from ._subscriptions import KafkaEventStream, KafkaSubscription
from ._topic import ensure_topic

__all__ = ["KafkaBus"]

log = logging.getLogger("fabrica.events")

_Sub = KafkaSubscription | KafkaEventStream


class KafkaBus(BrokerBus[_Sub]):
    """An `EventBus` on one Kafka topic.

    `bootstrap` is ``HOST:PORT`` or several separated by commas. `topic` is created with
    `partitions` partitions and `replication` replicas (aiokafka cannot ask for the
    broker's default; 1 suits one broker, use 3 on a production cluster) when
    missing. `queue_size` bounds each handler's queue, `stream_size` is a stream's default
    bound, and `publish_timeout` bounds a publish (until acknowledged) and how long an
    arriving event waits for room in a full handler queue; `request_timeout` bounds
    setting up and looking up. `fetch_wait` is how long a consumer's fetch waits at the
    broker for records (Tansu answers only then, Kafka as soon as a record comes).
    `resume_overlap` (seconds): see `KafkaEventStream`. `client_id` names the clients on
    the broker (default ``fabrica``).
    """

    def __init__(
        self,
        bootstrap: str = "127.0.0.1:9092",
        *,
        topic: str,
        partitions: int = 6,
        replication: int = 1,
        queue_size: int = 1000,
        stream_size: int = 100,
        publish_timeout: float = 5.0,
        request_timeout: float = 5.0,
        fetch_wait: float = 0.05,
        resume_overlap: float = 30.0,
        linger: float = 0.0,
        client_id: str | None = None,
    ) -> None:
        super().__init__(queue_size, stream_size)
        if min(publish_timeout, request_timeout, fetch_wait) <= 0 or resume_overlap < 0:
            raise ValueError("timeouts must be positive numbers of seconds")
        if partitions < 1:
            raise ValueError("a Kafka topic needs at least one partition")
        if not topic:
            raise ValueError("a Kafka topic name is required")
        self._servers = [s.strip() for s in bootstrap.split(",") if s.strip()]
        if not self._servers:
            raise ValueError("a Kafka bootstrap server is required")
        self.bootstrap, self.topic = bootstrap, topic
        self.partitions, self._replication = partitions, replication
        self._publish_timeout, self._request_timeout = publish_timeout, request_timeout
        self._fetch_wait, self._overlap, self._linger = fetch_wait, resume_overlap, linger
        self._client_id = client_id or "fabrica"
        self._producer: AIOKafkaProducer | None = None

    @property
    def connected(self) -> bool:
        """Whether `start` has connected (the producer reconnects by itself after)."""
        return self._producer is not None

    async def ping(self, timeout: float) -> None:
        """Return once the brokers answer a metadata request, within `timeout` seconds;
        else `EventBusError`. (A frozen broker keeps its connections open: only a request
        tells it apart from a live one; `/ready` asks.)"""
        producer = self._producer
        if producer is None:
            raise EventBusError(f"not connected to Kafka at {self.bootstrap}")
        try:
            async with asyncio.timeout(timeout):
                await producer.client.fetch_all_metadata()
        except (TimeoutError, KafkaError, OSError) as exc:
            why = f"within {timeout:g} s" if isinstance(exc, TimeoutError) else f"({exc!r})"
            raise EventBusError(f"no answer from Kafka at {self.bootstrap} {why}") from exc

    async def publish(self, event: CloudEvent) -> None:
        """Append `event` to the topic; returns once every in-sync replica has it.

        `BusClosed` after close; `EventBusError` if the broker did not acknowledge it in
        time (the caller may send it again).
        """
        await super().publish(event)

    def stream(self, pattern: str = "**", *, maxsize: int | None = None,
               after: str | None = None) -> EventStream:
        """A bounded iterator of matching events; its reader waits when it is full.

        Its consumer is made in the background: enter it (``async with``) to wait until it
        reads. With `after` (an event id), it reads from right after that event (see
        `KafkaEventStream`), then on live.
        """
        return super().stream(pattern, maxsize=maxsize, after=after)

    # -- the transport (see BrokerBus) ----------------------------------------------------

    @property
    def _started(self) -> bool:
        return self._producer is not None

    async def _connect_broker(self) -> None:
        await self._setup_topic()
        self._producer = await self._connect_producer()

    async def _disconnect_broker(self, deadline: float) -> None:
        producer, self._producer = self._producer, None
        if producer is not None:
            loop = asyncio.get_running_loop()
            with contextlib.suppress(Exception):
                async with asyncio.timeout(max(0.1, deadline - loop.time())):
                    await producer.stop()

    def _new_subscription(self, handler: Handler, name: str, pattern: str) -> _Sub:
        return KafkaSubscription(self._forget, handler, name, pattern, self._queue_size,
                                 self._publish_timeout)

    def _new_stream(self, pattern: str, size: int, after: str | None) -> _Sub:
        return KafkaEventStream(self._forget, pattern, size, after, self._overlap)

    def _check_pattern(self, pattern: str) -> None:
        compile_pattern(pattern)

    # -- internals ------------------------------------------------------------------------

    def _options(self) -> dict[str, Any]:
        return {"bootstrap_servers": self._servers, "client_id": self._client_id,
                "request_timeout_ms": int(1000 * self._request_timeout),
                "retry_backoff_ms": 100}

    def _consumer(self) -> AIOKafkaConsumer:
        """A consumer without a group: each subscription places itself (`_reader`)."""
        return AIOKafkaConsumer(
            **self._options(), group_id=None, enable_auto_commit=False,
            fetch_max_wait_ms=int(1000 * self._fetch_wait),
            # An offset gone from the topic (a broker that lost its log): read what it
            # holds rather than skip to the end.
            auto_offset_reset="earliest")

    async def _setup_topic(self) -> None:
        admin = AIOKafkaAdminClient(**self._options())
        try:
            async with asyncio.timeout(self._request_timeout):
                await admin.start()
                await ensure_topic(admin, self.topic, self.partitions, self._replication)
        except (TimeoutError, KafkaError, OSError) as exc:
            raise EventBusError(f"cannot set up Kafka topic {self.topic} at {self.bootstrap}: "
                                f"{exc!r}") from exc
        finally:
            with contextlib.suppress(Exception):
                await admin.close()

    async def _connect_producer(self) -> AIOKafkaProducer:
        producer = AIOKafkaProducer(
            **self._options(), acks="all", enable_idempotence=False,
            linger_ms=int(1000 * self._linger))
        try:
            async with asyncio.timeout(self._request_timeout):
                await producer.start()
        except (TimeoutError, KafkaError, OSError) as exc:
            with contextlib.suppress(Exception):
                await producer.stop()
            raise EventBusError(f"cannot connect to Kafka at {self.bootstrap}: {exc!r}") from exc
        log.info("event bus connected to Kafka at %s, topic %s", self.bootstrap, self.topic)
        return producer

    async def _attach(self, sub: _Sub) -> None:
        try:
            await sub.attach(self._consumer, self.topic, self._request_timeout)
        except (TimeoutError, KafkaError, OSError) as exc:
            raise EventBusError(f"cannot subscribe {sub.name} on Kafka topic {self.topic} at "
                                f"{self.bootstrap}: {exc!r}") from exc

    async def _send(self, event: CloudEvent) -> None:
        producer = self._producer
        if producer is None:
            raise BusClosed(f"cannot publish {event.type}: the event bus is closed")
        key, value = encode(event)
        try:
            async with asyncio.timeout(self._publish_timeout):
                sent = await producer.send(self.topic, value, key=key, headers=HEADERS)
                sent.add_done_callback(_settled)
                # Shielded: a publish that gave up leaves its record to the producer,
                # which still sends it (a caller's re-send makes a same-id duplicate).
                await asyncio.shield(sent)
        except (TimeoutError, KafkaError) as exc:
            if self._closed:
                raise BusClosed(f"cannot publish {event.type}: the event bus is closed") from exc
            raise EventBusError(
                f"cannot publish {event.type} (id {event.id}) to Kafka at {self.bootstrap}: "
                f"{exc!r}") from exc


def _settled(sent: asyncio.Future[Any]) -> None:
    """Retrieve the outcome of a send whose publish may have given up on it (asyncio logs
    an exception nobody retrieved); that publish already raised `EventBusError`."""
    if not sent.cancelled():
        sent.exception()
