"""The keyed work queue between the event handlers and the reconcile workers.

Why keys and not events
-----------------------
Reconciliation is level-triggered: like controller-runtime's `reconcile.Request`, a work item
is only the object's key (for example `(kind, uid)`), never the event that produced it, and
the reconciler reads the current state when it runs. So the queue can merge freely: ten
changes to one resource that arrive before a worker reaches it become one reconcile, and
nothing is lost by merging because the reconciler will see the latest state anyway.

The design is Kubernetes client-go's `workqueue` package (the plain, delaying and
rate-limiting queues folded into one class), on one asyncio event loop:

* Three collections hold the state. `_queue` is the FIFO of keys ready for a worker;
  `_dirty` is the set of keys that need a reconcile (every queued key, plus keys re-added
  while being processed); `_processing` is the set of keys a worker holds right now.
* `add` is idempotent: a key already dirty is not queued again (dedup).
* Single flight: `get` moves a key from the queue into `_processing`, and a key that is
  processing is never put in the queue, so two workers never reconcile the same object at
  once (they would race on its status). An `add` during processing only marks it dirty;
  `done` then puts it back at the end of the queue. A change that arrives mid-reconcile is
  therefore never lost, and it causes exactly one more reconcile, however many adds came.
* Delays use one timer per key (`add_after`) on a `Clock` passed in (default the running
  loop's, `LoopClock`; tests pass a fake one they advance by hand). Only the earliest pending time
  is kept: a retry or a `RequeueAfter` that is due sooner supersedes a later one, and the
  later one is redundant because that reconcile will ask again if it still needs to.
* Rate limiting is a `RateLimiter` passed in (default `ExponentialBackoff`): failures are
  counted per key, `add_rate_limited` waits the limiter's delay, and `forget` resets it after
  a success.
* Shutdown stops new adds (they are ignored, as in client-go, so late events during a stop
  are harmless), cancels pending timers, and wakes every waiting `get` so idle workers
  exit with `QueueShutDown`. With `drain=True` the keys already queued are still handed out
  and `wait_drained` waits for them and for the keys in flight, so a graceful stop finishes
  its work; delayed keys are dropped either way, since the controller reconciles every
  resource when it starts again.

kopf, by contrast, keeps one asyncio queue and one worker task per object and batches that
object's events. A single keyed queue drained by a fixed pool of workers bounds concurrency by
the worker count rather than by the number of objects, and keeps all the bookkeeping in three
plain collections that are easy to reason about and to test.

The queue is not thread-safe: call every method from the event loop that runs the workers
(the cost of one loop is no locks at all; there is no `await` between a check and its update).
"""

from __future__ import annotations

import asyncio
import functools
from collections import deque
from collections.abc import Hashable
from typing import Generic, TypeVar

from ._backoff import ExponentialBackoff, RateLimiter
from ._clock import Clock, LoopClock, Timer

__all__ = ["QueueShutDown", "WorkQueue"]

K = TypeVar("K", bound=Hashable)


class QueueShutDown(Exception):
    """Raised by `WorkQueue.get` once the queue is shut down and has no key left to hand out.

    Workers treat it as their signal to exit.
    """


class WorkQueue(Generic[K]):
    """A deduplicating, single-flight, delaying, rate-limited queue of keys.

    Parameters:
        rate_limiter: decides per-key retry delays for `add_rate_limited`; defaults to
            `ExponentialBackoff()` (5 ms doubling up to 5 minutes, 10 % jitter).
        clock: the time and timers of delayed adds; defaults to `LoopClock()`, the running
            event loop's monotonic clock.

    A worker loop looks like::

        while True:
            try:
                key = await queue.get()
            except QueueShutDown:
                return
            try:
                await reconcile(key)
            except Exception:
                queue.add_rate_limited(key)   # retry later, backing off
            else:
                queue.forget(key)             # success: reset the backoff
            finally:
                queue.done(key)               # always: lets the key be handed out again
    """

    def __init__(
        self, rate_limiter: RateLimiter[K] | None = None, *, clock: Clock | None = None
    ) -> None:
        self._limiter: RateLimiter[K] = (
            rate_limiter if rate_limiter is not None else ExponentialBackoff()
        )
        self._clock: Clock = clock if clock is not None else LoopClock()
        self._queue: deque[K] = deque()
        self._dirty: set[K] = set()
        self._processing: set[K] = set()
        self._delayed: dict[K, Timer] = {}
        self._getters: deque[asyncio.Future[None]] = deque()
        self._shutting_down = False
        self._drained = asyncio.Event()

    # -- adding ---------------------------------------------------------------------------

    def add(self, key: K) -> None:
        """Ask for `key` to be processed; merged with any request already pending for it."""
        if self._shutting_down or key in self._dirty:
            return
        self._dirty.add(key)
        if key in self._processing:
            return  # re-queued by done()
        self._queue.append(key)
        self._wake_one()

    def add_after(self, key: K, delay: float) -> None:
        """Add `key` once `delay` seconds have passed; the earliest pending time wins.

        A delay <= 0 adds at once and leaves any pending delayed add in place. With the
        default clock, must be called from within the running event loop.
        """
        if self._shutting_down:
            return
        if delay <= 0:
            self.add(key)
            return
        when = self._clock.now() + delay
        pending = self._delayed.get(key)
        if pending is not None:
            if pending.when() <= when:
                return
            pending.cancel()
        self._delayed[key] = self._clock.call_at(when, functools.partial(self._add_delayed, key))

    def add_rate_limited(self, key: K) -> None:
        """Add `key` after the rate limiter's delay for it, counting one more failure."""
        if self._shutting_down:
            return
        self.add_after(key, self._limiter.when(key))

    def forget(self, key: K) -> None:
        """Reset `key`'s failure count, so its next `add_rate_limited` waits the least."""
        self._limiter.forget(key)

    def num_requeues(self, key: K) -> int:
        """How many times `key` was rate-limited since it was last forgotten."""
        return self._limiter.failures(key)

    # -- processing -----------------------------------------------------------------------

    async def get(self) -> K:
        """Wait for the next ready key (FIFO) and mark it processing until `done(key)`.

        Raises `QueueShutDown` once the queue is shut down and no key is left to hand out.
        """
        while not self._queue:
            if self._shutting_down:
                raise QueueShutDown
            getter = asyncio.get_running_loop().create_future()
            self._getters.append(getter)
            try:
                await getter
            except BaseException:
                getter.cancel()
                if getter in self._getters:
                    self._getters.remove(getter)
                if self._queue and not getter.cancelled():
                    self._wake_one()  # we were woken for a key but will not take it
                raise
        key = self._queue.popleft()
        self._dirty.discard(key)
        self._processing.add(key)
        return key

    def done(self, key: K) -> None:
        """End processing of `key`; if it was added meanwhile, queue it again.

        Raises `ValueError` if `key` is not being processed (a worker bug: a second `done`).
        """
        if key not in self._processing:
            raise ValueError(f"done({key!r}): key is not being processed")
        self._processing.remove(key)
        if key in self._dirty:
            self._queue.append(key)
            self._wake_one()
        self._check_drained()

    # -- shutdown -------------------------------------------------------------------------

    def shutdown(self, drain: bool = True) -> None:
        """Stop accepting adds, cancel delayed adds and wake every waiting `get`.

        With `drain` (the default) the keys already queued, and keys re-added while in
        flight, are still handed out; `get` raises `QueueShutDown` once none is left. Without
        it they are discarded and `get` raises at once. Either way keys in flight stay
        in flight until `done`; await `wait_drained` for them. Calling it again is allowed,
        for example to escalate to `drain=False`.
        """
        self._shutting_down = True
        for handle in self._delayed.values():
            handle.cancel()
        self._delayed.clear()
        if not drain:
            self._queue.clear()
            self._dirty.clear()
        while self._getters:
            getter = self._getters.popleft()
            if not getter.done():
                getter.set_result(None)
        self._check_drained()

    async def wait_drained(self) -> None:
        """Wait until the queue is shut down and no key is queued or in flight."""
        await self._drained.wait()

    @property
    def shutting_down(self) -> bool:
        """True once `shutdown` was called."""
        return self._shutting_down

    @property
    def in_flight(self) -> int:
        """The number of keys handed out by `get` and not yet `done`."""
        return len(self._processing)

    def __len__(self) -> int:
        """The number of keys ready and waiting for a worker (the queue-depth metric)."""
        return len(self._queue)

    def __repr__(self) -> str:
        state = "shut down" if self._shutting_down else "running"
        return (
            f"<WorkQueue {state}: {len(self._queue)} queued, {len(self._processing)} in flight,"
            f" {len(self._delayed)} delayed>"
        )

    # -- internals ------------------------------------------------------------------------

    def _add_delayed(self, key: K) -> None:
        self._delayed.pop(key, None)
        self.add(key)

    def _wake_one(self) -> None:
        while self._getters:
            getter = self._getters.popleft()
            if not getter.done():
                getter.set_result(None)
                return

    def _check_drained(self) -> None:
        if self._shutting_down and not self._queue and not self._processing:
            self._drained.set()
