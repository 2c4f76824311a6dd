"""`Delivery`: one handler subscription's bounded queue and the task that calls its handler.

Every bus feeds its handler subscriptions through one of these, so a slow or failing
subscriber never holds up another: each has its own `Mailbox` and delivery task, and a
handler that raises is logged (with the subscriber's name and the event's type) and
counted while delivery goes on. An event that finds the queue full keeps its place while
its feeder waits for room until a deadline; past it, the event is dropped for this
subscriber only, logged as an error and counted (`wait_room`).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterable

from ._bus import Handler, SubscriptionStats
from ._cloudevent import CloudEvent
from ._mailbox import Mailbox

__all__ = ["Delivery", "drain"]

log = logging.getLogger("fabrica.events")


class Delivery:
    """Calls `handler` with each queued event, in queue order, on a task of its own."""

    def __init__(self, handler: Handler, name: str, pattern: str, size: int) -> None:
        self._handler, self._name, self._pattern = handler, name, pattern
        self.mailbox = Mailbox(size)
        self._task: asyncio.Task[None] | None = None
        self._delivered = self._failed = 0

    @property
    def name(self) -> str:
        return self._name

    @property
    def pattern(self) -> str:
        return self._pattern

    @property
    def stats(self) -> SubscriptionStats:
        return SubscriptionStats(
            name=self._name,
            pattern=self._pattern,
            mode="handler",
            delivered=self._delivered,
            failed=self._failed,
            dropped=self.mailbox.dropped,
            pending=self.mailbox.pending,
        )

    @property
    def task(self) -> asyncio.Task[None] | None:
        return self._task

    def start(self) -> None:
        if self._task is None:
            self._task = asyncio.create_task(self._run(), name=f"fabrica.events:{self._name}")

    async def put(self, event: CloudEvent, timeout: float) -> None:
        """Queue `event`, waiting at most `timeout` seconds for room (then it is dropped)."""
        if (seq := self.mailbox.push(event)) is not None:
            deadline = asyncio.get_running_loop().time() + timeout
            await self.wait_room(event, seq, deadline, timeout)

    async def wait_room(self, event: CloudEvent, seq: int, deadline: float,
                        timeout: float) -> None:
        """Wait until `event`, queued as `seq` beyond the bound, fits; drop it at `deadline`."""
        room = await self.mailbox.wait_room(seq, deadline)
        if not room and not self.mailbox.closed:  # a closed one counted it already
            log.error(
                "event %s (id %s) dropped for subscriber %s: queue of %d full for %.1fs",
                event.type,
                event.id,
                self._name,
                self.mailbox.maxsize,
                timeout,
            )

    async def stop(self) -> None:
        """End now: what is still queued is dropped and counted."""
        self.mailbox.close()
        task = self._task
        if task is None or task is asyncio.current_task():
            return  # a handler closing its own subscription: the loop ends after it returns
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)

    async def _run(self) -> None:
        while (event := await self.mailbox.get()) is not None:
            try:
                await self._handler(event)
            except Exception:
                self._failed += 1
                log.exception(
                    "event handler %s failed on %s (id %s)", self._name, event.type, event.id
                )
            else:
                self._delivered += 1


async def drain(deliveries: Iterable[Delivery], timeout: float) -> None:
    """Deliver what is queued, accepting nothing more, for at most `timeout` seconds."""
    me = asyncio.current_task()
    tasks: set[asyncio.Task[None]] = set()
    pending = list(deliveries)
    for delivery in pending:
        delivery.mailbox.finish()
        delivery.start()
        if delivery.task is not None and delivery.task is not me:
            tasks.add(delivery.task)
    if not tasks:
        return
    _, late = await asyncio.wait(tasks, timeout=timeout)
    if late:
        left = sum(len(d.mailbox) for d in pending)
        log.warning("event bus closed with %d events undelivered after %.1fs", left, timeout)
