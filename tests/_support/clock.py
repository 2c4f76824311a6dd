"""A clock tests advance by hand, for the work queue's `clock=` seam (`fabrica.reconcile.Clock`).

Time stands still until `advance`, which fires the due timers in time order, each with
`now()` set to its own due time (as a real loop would see it), so a test states exactly
which delayed add has fired at a given instant, without waiting wall time.
"""

from __future__ import annotations

import heapq
import itertools
from collections.abc import Callable

__all__ = ["FakeClock", "FakeTimer"]


class FakeTimer:
    def __init__(self, when: float, callback: Callable[[], object]) -> None:
        self._when = when
        self.callback = callback
        self.cancelled = False

    def when(self) -> float:
        return self._when

    def cancel(self) -> None:
        self.cancelled = True


class FakeClock:
    """Starts at `start` seconds; moves only on `advance`."""

    def __init__(self, start: float = 1000.0) -> None:
        self._now = start
        self._timers: list[tuple[float, int, FakeTimer]] = []
        self._order = itertools.count()  # equal due times fire in the order scheduled

    def now(self) -> float:
        return self._now

    def call_at(self, when: float, callback: Callable[[], object]) -> FakeTimer:
        timer = FakeTimer(when, callback)
        heapq.heappush(self._timers, (when, next(self._order), timer))
        return timer

    def advance(self, seconds: float) -> None:
        """Move time on by `seconds`, running every timer due by then, earliest first."""
        if seconds < 0:
            raise ValueError(f"time does not go back: advance({seconds!r})")
        target = self._now + seconds
        while self._timers and self._timers[0][0] <= target:
            when, _, timer = heapq.heappop(self._timers)
            if timer.cancelled:
                continue
            self._now = max(self._now, when)
            timer.callback()
        self._now = target

    @property
    def pending(self) -> int:
        """Timers scheduled and neither fired nor cancelled."""
        return sum(not timer.cancelled for _, _, timer in self._timers)

