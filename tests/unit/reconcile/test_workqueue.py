"""The reconcile work queue: dedup, single flight, delays, backoff, shutdown, and a stress run."""

from __future__ import annotations

import asyncio
import itertools
import random
from typing import Any, TypeVar

import pytest

import fabrica.reconcile
from fabrica.reconcile import ExponentialBackoff, QueueShutDown, WorkQueue
from tests._support.clock import FakeClock

T = TypeVar("T")


async def _get(q: WorkQueue[T]) -> T:
    """`q.get()` bounded, so a regression fails the test instead of hanging the suite."""
    return await asyncio.wait_for(q.get(), 1)


async def _settle() -> None:
    """Let every ready task run (a few loop iterations, no real time)."""
    for _ in range(5):
        await asyncio.sleep(0)


def test_public_exports() -> None:
    assert {"ExponentialBackoff", "QueueShutDown", "RateLimiter", "WorkQueue"} <= set(
        fabrica.reconcile.__all__
    )
    for name in fabrica.reconcile.__all__:
        assert getattr(fabrica.reconcile, name) is not None


# -- dedup, FIFO, single flight ---------------------------------------------------------------


async def test_waiting_key_is_queued_once() -> None:
    q: WorkQueue[tuple[str, str]] = WorkQueue()
    for _ in range(3):
        q.add(("Device", "dev-1"))
    q.add(("Device", "dev-2"))
    assert len(q) == 2
    assert await _get(q) == ("Device", "dev-1")
    assert await _get(q) == ("Device", "dev-2")
    assert len(q) == 0


async def test_fifo_among_ready_keys() -> None:
    q: WorkQueue[str] = WorkQueue()
    for key in "cab":
        q.add(key)
    assert [await _get(q) for _ in range(3)] == ["c", "a", "b"]


async def test_requeued_key_goes_to_the_back() -> None:
    q: WorkQueue[str] = WorkQueue()
    q.add("a")
    q.add("b")
    assert await _get(q) == "a"
    q.add("a")
    q.done("a")
    assert [await _get(q), await _get(q)] == ["b", "a"]


async def test_key_in_flight_is_not_handed_to_a_second_worker() -> None:
    q: WorkQueue[str] = WorkQueue()
    q.add("a")
    assert await _get(q) == "a"
    q.add("a")  # a change arrives while "a" is being reconciled
    second = asyncio.create_task(q.get())
    await _settle()
    assert not second.done()  # "a" is dirty but not handed out twice
    q.add("b")
    assert await asyncio.wait_for(second, 1) == "b"  # other keys still flow
    third = asyncio.create_task(q.get())
    await _settle()
    assert not third.done()
    q.done("a")
    assert await asyncio.wait_for(third, 1) == "a"  # the mid-reconcile change is not lost


async def test_adds_during_processing_give_exactly_one_more_run() -> None:
    q: WorkQueue[str] = WorkQueue()
    q.add("a")
    assert await _get(q) == "a"
    for _ in range(3):
        q.add("a")
    assert len(q) == 0  # remembered, not queued while in flight
    q.done("a")
    assert len(q) == 1
    assert await _get(q) == "a"
    q.done("a")
    assert len(q) == 0
    assert q.in_flight == 0


async def test_done_without_get_is_an_error() -> None:
    q: WorkQueue[str] = WorkQueue()
    with pytest.raises(ValueError):
        q.done("a")
    q.add("a")
    await _get(q)
    q.done("a")
    with pytest.raises(ValueError):
        q.done("a")


async def test_cancelled_getter_does_not_lose_the_key() -> None:
    q: WorkQueue[str] = WorkQueue()
    first = asyncio.create_task(q.get())
    second = asyncio.create_task(q.get())
    await _settle()
    q.add("a")  # wakes `first`...
    first.cancel()  # ...which is cancelled before it can take the key
    assert await asyncio.wait_for(second, 1) == "a"
    with pytest.raises(asyncio.CancelledError):
        await first


# -- delays ---------------------------------------------------------------------------------
# On a FakeClock, advanced by hand: exact due times, no wall time, no flakes under load.


async def test_add_after_delays_the_key_on_the_real_loop_clock() -> None:
    q: WorkQueue[str] = WorkQueue()  # the default LoopClock: the one test on wall time
    loop = asyncio.get_running_loop()
    start = loop.time()
    q.add_after("a", 0.03)
    assert len(q) == 0
    assert await _get(q) == "a"
    assert loop.time() - start >= 0.029  # never early (but for clock resolution); late is fine


async def test_add_after_fires_exactly_when_due() -> None:
    clock = FakeClock()
    q: WorkQueue[str] = WorkQueue(clock=clock)
    q.add_after("a", 0.5)
    clock.advance(0.25)
    assert len(q) == 0
    clock.advance(0.25)
    assert len(q) == 1
    assert await _get(q) == "a"


async def test_delayed_keys_come_out_in_due_order() -> None:
    clock = FakeClock()
    q: WorkQueue[str] = WorkQueue(clock=clock)
    q.add_after("late", 0.5)
    q.add_after("soon", 0.25)
    clock.advance(1)
    assert [await _get(q), await _get(q)] == ["soon", "late"]


async def test_add_after_keeps_the_earliest_time() -> None:
    clock = FakeClock()
    q: WorkQueue[str] = WorkQueue(clock=clock)
    q.add_after("a", 0.25)
    q.add_after("a", 0.5)  # later: ignored
    assert clock.pending == 1
    clock.advance(0.25)
    assert await _get(q) == "a"
    q.done("a")
    clock.advance(1)
    assert len(q) == 0  # the later add did not fire afterwards


async def test_add_after_earlier_time_supersedes_a_later_one() -> None:
    clock = FakeClock()
    q: WorkQueue[str] = WorkQueue(clock=clock)
    q.add_after("a", 0.5)
    q.add_after("a", 0.25)  # earlier: replaces the pending one
    assert clock.pending == 1  # the superseded timer was cancelled
    clock.advance(0.125)
    assert len(q) == 0
    clock.advance(0.125)
    assert await _get(q) == "a"
    q.done("a")
    clock.advance(1)
    assert len(q) == 0


async def test_add_after_without_delay_adds_now() -> None:
    clock = FakeClock()
    q: WorkQueue[str] = WorkQueue(clock=clock)
    q.add_after("a", 0)
    q.add_after("b", -1)
    assert len(q) == 2
    assert clock.pending == 0


async def test_delayed_add_merges_with_a_queued_key() -> None:
    clock = FakeClock()
    q: WorkQueue[str] = WorkQueue(clock=clock)
    q.add("a")
    q.add_after("a", 0.25)
    clock.advance(0.25)
    assert len(q) == 1


async def test_delayed_add_of_a_key_in_flight_runs_it_once_more() -> None:
    clock = FakeClock()
    q: WorkQueue[str] = WorkQueue(clock=clock)
    q.add("a")
    assert await _get(q) == "a"
    q.add_after("a", 0.25)
    clock.advance(0.25)
    assert len(q) == 0  # single flight: not handed out while in flight
    q.done("a")
    assert await _get(q) == "a"


async def test_add_rate_limited_uses_the_backoff() -> None:
    clock = FakeClock()
    q: WorkQueue[str] = WorkQueue(ExponentialBackoff(base=0.25, jitter=0), clock=clock)
    q.add_rate_limited("a")
    assert q.num_requeues("a") == 1
    clock.advance(0.125)
    assert len(q) == 0
    clock.advance(0.125)  # base: 0.25 s after the first failure
    assert await _get(q) == "a"
    q.done("a")
    q.add_rate_limited("a")
    assert q.num_requeues("a") == 2
    clock.advance(0.25)
    assert len(q) == 0
    clock.advance(0.25)  # doubled: 0.5 s after the second
    assert await _get(q) == "a"
    q.done("a")
    q.forget("a")
    assert q.num_requeues("a") == 0
    q.add_rate_limited("a")
    clock.advance(0.25)  # forgotten: back to base
    assert len(q) == 1
    q.shutdown(drain=False)


# -- backoff --------------------------------------------------------------------------------


def test_backoff_doubles_from_base() -> None:
    b = ExponentialBackoff(jitter=0)
    assert [b.when("k") for _ in range(5)] == [0.005, 0.01, 0.02, 0.04, 0.08]
    assert b.failures("k") == 5
    assert b.failures("other") == 0


def test_backoff_is_capped() -> None:
    b = ExponentialBackoff(base=1.0, cap=10.0, jitter=0)
    assert [b.when("k") for _ in range(6)] == [1.0, 2.0, 4.0, 8.0, 10.0, 10.0]


def test_backoff_survives_huge_failure_counts() -> None:
    b = ExponentialBackoff(base=1.0, cap=10.0, jitter=0.5, rng=random.Random(0))
    delays = [b.when("k") for _ in range(1500)]  # 2.0**1500 overflows a float
    assert all(d <= 10.0 for d in delays)
    assert delays[-1] >= 5.0


def test_backoff_forget_resets_only_that_key() -> None:
    b = ExponentialBackoff(base=1.0, jitter=0)
    for _ in range(3):
        b.when("a")
        b.when("b")
    b.forget("a")
    b.forget("never-failed")
    assert b.failures("a") == 0
    assert b.when("a") == 1.0
    assert b.when("b") == 8.0


def test_backoff_jitter_stays_within_bounds() -> None:
    b = ExponentialBackoff(base=1.0, cap=100.0, jitter=0.1, rng=random.Random(42))
    samples = []
    for _ in range(500):
        b.forget("k")
        b.when("k")  # 1.0 nominal
        samples.append(b.when("k"))  # 2.0 nominal
    assert all(1.8 <= s <= 2.2 for s in samples)
    assert min(samples) < 1.85 and max(samples) > 2.15  # it really spreads


def test_backoff_jitter_never_exceeds_the_cap() -> None:
    b = ExponentialBackoff(base=1.0, cap=4.0, jitter=0.2, rng=random.Random(7))
    for _ in range(10):
        b.when("k")
    samples = [b.when("k") for _ in range(200)]
    assert all(3.2 <= s <= 4.0 for s in samples)


def test_backoff_is_deterministic_with_a_seeded_rng() -> None:
    first = ExponentialBackoff(rng=random.Random(3))
    second = ExponentialBackoff(rng=random.Random(3))
    assert [first.when("k") for _ in range(8)] == [second.when("k") for _ in range(8)]


@pytest.mark.parametrize(
    "kwargs", [{"base": 0}, {"base": 2.0, "cap": 1.0}, {"jitter": -0.1}, {"jitter": 1.0}]
)
def test_backoff_rejects_bad_parameters(kwargs: dict[str, Any]) -> None:
    with pytest.raises(ValueError):
        ExponentialBackoff(**kwargs)


# -- shutdown -------------------------------------------------------------------------------


async def test_shutdown_wakes_waiting_getters() -> None:
    q: WorkQueue[str] = WorkQueue()
    getters = [asyncio.create_task(q.get()) for _ in range(3)]
    await _settle()
    q.shutdown()
    results = await asyncio.wait_for(asyncio.gather(*getters, return_exceptions=True), 1)
    assert all(isinstance(r, QueueShutDown) for r in results)
    assert q.shutting_down


async def test_shutdown_ignores_new_adds() -> None:
    q: WorkQueue[str] = WorkQueue()
    q.shutdown()
    q.add("a")
    q.add_after("b", 0.001)
    q.add_rate_limited("c")
    assert len(q) == 0
    assert q.num_requeues("c") == 0
    with pytest.raises(QueueShutDown):
        await _get(q)
    await asyncio.wait_for(q.wait_drained(), 1)


async def test_shutdown_cancels_delayed_adds() -> None:
    clock = FakeClock()
    q: WorkQueue[str] = WorkQueue(clock=clock)
    q.add_after("a", 0.25)
    q.shutdown()
    assert clock.pending == 0
    clock.advance(1)
    assert len(q) == 0
    with pytest.raises(QueueShutDown):
        await _get(q)


async def test_drain_finishes_queued_and_in_flight_keys() -> None:
    q: WorkQueue[str] = WorkQueue()
    q.add("a")
    q.add("b")
    assert await _get(q) == "a"
    q.shutdown(drain=True)
    drained = asyncio.create_task(q.wait_drained())
    await _settle()
    assert not drained.done()
    assert await _get(q) == "b"  # the backlog is still handed out
    q.done("a")
    await _settle()
    assert not drained.done()  # "b" is still in flight
    q.done("b")
    await asyncio.wait_for(drained, 1)
    with pytest.raises(QueueShutDown):
        await _get(q)


async def test_drain_still_runs_a_change_that_arrived_mid_reconcile() -> None:
    q: WorkQueue[str] = WorkQueue()
    q.add("a")
    assert await _get(q) == "a"
    q.add("a")
    q.shutdown()
    q.done("a")
    assert await _get(q) == "a"
    q.done("a")
    await asyncio.wait_for(q.wait_drained(), 1)


async def test_shutdown_without_drain_discards_the_backlog() -> None:
    q: WorkQueue[str] = WorkQueue()
    q.add("a")
    q.add("b")
    assert await _get(q) == "a"
    q.add("a")
    q.shutdown(drain=False)
    assert len(q) == 0
    with pytest.raises(QueueShutDown):
        await _get(q)
    drained = asyncio.create_task(q.wait_drained())
    await _settle()
    assert not drained.done()  # "a" is still in flight
    q.done("a")
    await asyncio.wait_for(drained, 1)
    assert len(q) == 0  # its dirty mark was discarded too


# -- stress ---------------------------------------------------------------------------------


async def test_stress_single_flight_and_no_lost_adds() -> None:
    """Many workers, random adds from outside and from inside reconciles.

    Checks that no key is ever held by two workers at once, and that every key is processed
    at least once after its last accepted add.
    """
    q: WorkQueue[int] = WorkQueue()
    keys = list(range(25))
    tick = itertools.count()
    last_add: dict[int, int] = {}
    last_start: dict[int, int] = {}
    active: set[int] = set()
    overlaps: list[int] = []
    runs = adds = 0

    def add(key: int) -> None:
        nonlocal adds
        if not q.shutting_down:
            last_add[key] = next(tick)
            adds += 1
        q.add(key)

    async def worker(rng: random.Random) -> None:
        nonlocal runs
        while True:
            try:
                key = await q.get()  # idle workers wait; the drain below is bounded
            except QueueShutDown:
                return
            if key in active:
                overlaps.append(key)
            active.add(key)
            last_start[key] = next(tick)
            runs += 1
            try:
                for _ in range(rng.randrange(4)):
                    await asyncio.sleep(0)
                    if rng.random() < 0.3:
                        add(key if rng.random() < 0.5 else rng.choice(keys))
            finally:
                active.discard(key)
                q.done(key)

    workers = [asyncio.create_task(worker(random.Random(i))) for i in range(8)]
    rng = random.Random(2024)
    for _ in range(3000):
        add(rng.choice(keys))
        if rng.random() < 0.2:
            await asyncio.sleep(0)
    q.shutdown(drain=True)
    await asyncio.wait_for(q.wait_drained(), 3)
    await asyncio.wait_for(asyncio.gather(*workers), 1)

    assert overlaps == []
    assert set(last_add) == set(keys)
    assert all(last_start[k] > last_add[k] for k in keys)
    assert runs < adds  # dedup merged adds
    assert len(q) == 0 and q.in_flight == 0
