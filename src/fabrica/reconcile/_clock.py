"""The clock the work queue reads and schedules its delayed adds on: a seam for tests.

A delayed add (`WorkQueue.add_after`, a rate-limited retry, a ``RequeueAfter``) needs the
current time and a timer. By default both come from the running asyncio loop's monotonic
clock (`LoopClock`). Tests pass a fake clock that they advance by hand, so they check exact
timer behaviour (which add fires, when, and which one was superseded) without waiting wall
time, and without flaking when a loaded machine runs a 5 ms timer late. This is
controller-runtime's ``clock.WithTicker`` seam (``k8s.io/utils/clock``), cut to what the
queue uses.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Protocol

__all__ = ["Clock", "LoopClock", "Timer"]


class Timer(Protocol):
    """A scheduled callback: when it is due, and a way to call it off."""

    def when(self) -> float: ...

    def cancel(self) -> None: ...


class Clock(Protocol):
    """Monotonic time in seconds, and callbacks at a time on that scale.

    `now` is the current time; `call_at` runs `callback` once `now()` reaches `when` and
    returns a `Timer` that cancels it. Callbacks run on the queue's event loop thread.
    """

    def now(self) -> float: ...

    def call_at(self, when: float, callback: Callable[[], object]) -> Timer: ...


class LoopClock:
    """The running event loop's clock (`loop.time()` and `loop.call_at`): the default.

    It looks the loop up on every call, so one instance serves whichever loop is running;
    call it from within that loop.
    """

    def now(self) -> float:
        return asyncio.get_running_loop().time()

    def call_at(self, when: float, callback: Callable[[], object]) -> Timer:
        return asyncio.get_running_loop().call_at(when, callback)

    def __repr__(self) -> str:
        return "LoopClock()"
