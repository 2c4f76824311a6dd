"""`OutboxRelay`: publishes the events SQL writes recorded in their transactions.

Every server process runs one; the one holding the lease ``outbox:relay`` (a database lock,
see `fabrica.storage.Leases`) relays, the others stand by and take over within a second of
its death. One relay at a time keeps each resource's events in commit order: a batch is
read in ``seq`` order, the events of one resource are published one after the other (those
of different resources side by side), and a resource whose publish fails is not published
further in that batch, so nothing overtakes it. What was published is deleted from the
outbox; what failed stays and is retried with backoff, so writes go on while NATS is down
and the backlog drains when it is back. Delivery is at least once: a relay that dies
between publishing and deleting leaves events the next one publishes again, with the same
ids, which JetStream drops as duplicates (``Nats-Msg-Id``) within its duplicate window.

A write in this process wakes the relay at once (`wake`); writes of other processes are
seen by polling every `poll` seconds.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import defaultdict
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from typing import Protocol

from prometheus_client import CollectorRegistry, Counter, Gauge

from ..events import CloudEvent, EventBus
from ..storage import Leases, OutboxEntry, OutboxStats

__all__ = ["OutboxRelay"]

log = logging.getLogger("fabrica.events")

LEASE = "outbox:relay"


class OutboxStorage(Protocol):
    async def outbox_pending(self, limit: int = 500) -> list[OutboxEntry]: ...

    async def outbox_done(self, seqs: list[int]) -> None: ...

    async def outbox_stats(self) -> OutboxStats: ...


class OutboxRelay:
    def __init__(
        self,
        storage: OutboxStorage,
        bus: EventBus,
        leases: Leases,
        *,
        registry: CollectorRegistry | None = None,
        batch: int = 500,
        poll: float = 0.1,
        max_backoff: float = 5.0,
        batch_span: Callable[[Sequence[OutboxEntry]],
                             contextlib.AbstractContextManager[object]] | None = None,
    ) -> None:
        self.storage, self.bus, self.leases = storage, bus, leases
        # When tracing: a batch is a trace of its own, linked to the writes it relays.
        self.batch_span = batch_span
        self.batch, self.poll, self.max_backoff = batch, poll, max_backoff
        self.relayed = 0
        self.failures = 0
        self._wakeup = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._stats_task: asyncio.Task[None] | None = None
        self.backlog = 0
        self.lag = 0.0
        self._metrics(registry or CollectorRegistry())

    def _metrics(self, registry: CollectorRegistry) -> None:
        self._relayed = Counter("fabrica_outbox_relayed_total",
                                "Events this process relayed from the outbox to the bus",
                                registry=registry)
        self._failed = Counter("fabrica_outbox_publish_failures_total",
                               "Relay publishes that failed (the events stay, delayed)",
                               registry=registry)
        Gauge("fabrica_outbox_backlog", "Events recorded and not yet relayed",
              registry=registry).set_function(lambda: self.backlog)
        Gauge("fabrica_outbox_lag_seconds", "Age of the oldest event not yet relayed",
              registry=registry).set_function(lambda: self.lag)
        Gauge("fabrica_outbox_relaying", "1 while this process holds the relay lease",
              registry=registry).set_function(lambda: LEASE in self.leases.held)

    def wake(self) -> None:
        """Something was recorded: look now rather than at the next poll."""
        self._wakeup.set()

    async def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="fabrica.outbox-relay")
        self._stats_task = asyncio.create_task(self._watch(), name="fabrica.outbox-stats")

    async def stop(self, timeout: float = 5.0) -> None:
        """Relay what is pending (for at most `timeout` s), then stop and give the lease up."""
        if self._task is None:
            return
        with contextlib.suppress(Exception):
            async with asyncio.timeout(timeout):
                while LEASE in self.leases.held and await self._relay_batch():
                    pass
        for task in (self._task, self._stats_task):
            if task is not None:
                task.cancel()
        await asyncio.gather(*(t for t in (self._task, self._stats_task) if t is not None),
                             return_exceptions=True)
        self._task = self._stats_task = None
        await self.leases.release(LEASE)

    async def drained(self, timeout: float = 30.0) -> None:
        """Until the outbox is empty (tests, benchmarks)."""
        async with asyncio.timeout(timeout):
            while (await self.storage.outbox_stats()).backlog:
                self.wake()
                await asyncio.sleep(0.02)

    # -- the loop ------------------------------------------------------------------------

    async def _run(self) -> None:
        failures = 0
        while True:
            try:
                if await self.leases.acquire(LEASE):
                    if await self._relay_batch():
                        failures = 0
                        continue  # more may be waiting: no pause
                else:
                    await asyncio.sleep(1.0)  # another process relays
                    continue
                failures = 0
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                failures += 1
                self._report(failures, exc)
                await asyncio.sleep(min(self.max_backoff, 0.1 * 2 ** failures))
                continue
            await self._idle()

    async def _idle(self) -> None:
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(self.poll):
                await self._wakeup.wait()
        self._wakeup.clear()

    async def _relay_batch(self) -> bool:
        """One batch; True when it was full of published events (look again at once).
        Raises the first publish failure after the published ones are forgotten."""
        entries = await self.storage.outbox_pending(self.batch)
        if not entries:
            return False
        if self.batch_span is None:
            return await self._relay_entries(entries)
        with self.batch_span(entries):
            return await self._relay_entries(entries)

    async def _relay_entries(self, entries: list[OutboxEntry]) -> bool:
        chains: defaultdict[str, list[OutboxEntry]] = defaultdict(list)
        for entry in entries:
            chains[entry.resource].append(entry)
        results = await asyncio.gather(*(self._publish_chain(c) for c in chains.values()))
        done = [seq for published, _ in results for seq in published]
        await self.storage.outbox_done(done)
        self.relayed += len(done)
        self._relayed.inc(len(done))
        errors = [error for _, error in results if error is not None]
        if errors:
            self.failures += len(errors)
            self._failed.inc(len(errors))
            raise errors[0]
        return len(entries) == self.batch

    async def _publish_chain(self, chain: list[OutboxEntry]
                             ) -> tuple[list[int], Exception | None]:
        published: list[int] = []
        for entry in chain:
            try:
                await self.bus.publish(CloudEvent.from_json(entry.payload))
            except ValueError as exc:  # cannot ever be sent: say so, and do not block
                log.error("outbox event %s (%s) dropped: %s", entry.id, entry.subject, exc)
            except Exception as exc:
                return published, exc
            published.append(entry.seq)
        return published, None

    def _report(self, failures: int, exc: BaseException) -> None:
        level = logging.WARNING if failures == 1 else logging.DEBUG
        log.log(level, "outbox relay: %s; the events stay recorded and are retried", exc)

    async def _watch(self) -> None:
        """Backlog and lag for /metrics and /ready, every second."""
        while True:
            try:
                stats = await self.storage.outbox_stats()
                self.backlog = stats.backlog
                oldest = stats.oldest
                self.lag = 0.0 if oldest is None else max(
                    0.0, (datetime.now(UTC) - oldest).total_seconds())
            except asyncio.CancelledError:
                raise
            except Exception:  # the database is down: /ready says so through its own check
                pass
            await asyncio.sleep(1.0)
