"""The shared wait helpers (`tests._support.wait`): what every waiting test relies on."""

from __future__ import annotations

import itertools

import pytest

from tests._support.wait import eventually, eventually_sync


async def test_eventually_returns_the_first_truthy_value() -> None:
    values = iter([None, 0, [], "ready"])
    assert await eventually(lambda: next(values), interval=0) == "ready"


async def test_eventually_waits_out_failed_asserts() -> None:
    tries = itertools.count(1)

    def check() -> int:
        n = next(tries)
        assert n >= 3, f"try {n}"
        return n

    assert await eventually(check, interval=0) == 3


async def test_eventually_awaits_an_async_condition() -> None:
    tries = itertools.count(1)

    async def check() -> bool:
        return next(tries) == 2

    assert await eventually(check, interval=0) is True


async def test_eventually_times_out_with_the_last_failure() -> None:
    tries = itertools.count(1)

    def check() -> None:
        n = next(tries)
        assert n < 0, f"still failing at try {n}"

    with pytest.raises(AssertionError, match=r"within 0.05s; last failure: .*still failing") \
            as caught:
        await eventually(check, timeout=0.05, interval=0.01)
    assert isinstance(caught.value.__cause__, AssertionError)


async def test_eventually_times_out_showing_the_last_value() -> None:
    with pytest.raises(AssertionError, match=r"last returned None"):
        await eventually(lambda: None, timeout=0.02)


async def test_eventually_retries_only_the_errors_it_is_told() -> None:
    tries = itertools.count(1)

    def flaky() -> bool:
        if next(tries) < 3:
            raise ConnectionError("not yet")
        return True

    assert await eventually(flaky, interval=0, retry_on=(ConnectionError,))
    with pytest.raises(KeyError):  # a bug fails at once, without waiting out the timeout
        await eventually(lambda: {}["missing"], timeout=60)


def test_eventually_sync_polls_and_times_out() -> None:
    values = iter([False, False, 7])
    assert eventually_sync(lambda: next(values), interval=0) == 7
    with pytest.raises(AssertionError, match=r"last failure: AssertionError: nope"):
        eventually_sync(_never, timeout=0.02)


def _never() -> None:
    raise AssertionError("nope")
