"""Wait for a condition, not a time: `eventually` (async) and `eventually_sync`.

A fixed sleep followed by an assertion is a flake waiting for a loaded machine (too short)
and a slow suite on an idle one (too long). These poll the condition instead, and on the
deadline fail with the condition's last failure, like Gomega's `Eventually`.

The condition is a callable with no arguments. It holds when it returns a truthy value,
which `eventually` then returns (so `rack = await eventually(ready_rack)` works); it has not
held yet while it returns a falsy value (None included) or raises `AssertionError` (or one
of `retry_on`). So a condition written with asserts ends with ``return True``; one that
forgets times out showing "returned None", rather than passing at once. Any other
exception fails at once: a bug is not something to wait out. For `eventually` the
condition may also be a coroutine function (``async def``), whose result is awaited.
"""

from __future__ import annotations

import asyncio
import inspect
import time
from collections.abc import Awaitable, Callable
from typing import TypeVar

__all__ = ["eventually", "eventually_sync"]

T = TypeVar("T")

TIMEOUT = 20.0  # generous: only a failing test waits it out, on a loaded machine
INTERVAL = 0.01


async def eventually(
    condition: Callable[[], T | Awaitable[T]],
    *,
    timeout: float = TIMEOUT,
    interval: float = INTERVAL,
    retry_on: tuple[type[BaseException], ...] = (),
) -> T:
    """Poll `condition` every `interval` s until it holds; return its value."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            value = condition()
            if inspect.isawaitable(value):
                value = await value
        except (AssertionError, *retry_on) as exc:
            last: BaseException | object = exc
        else:
            if value:
                return value  # type: ignore[return-value]
            last = value
        if time.monotonic() >= deadline:
            raise _timed_out(timeout, last)
        await asyncio.sleep(interval)


def eventually_sync(
    condition: Callable[[], T],
    *,
    timeout: float = TIMEOUT,
    interval: float = INTERVAL,
    retry_on: tuple[type[BaseException], ...] = (),
) -> T:
    """`eventually` for a test without an event loop (a server in another process or thread)."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            value = condition()
        except (AssertionError, *retry_on) as exc:
            last: BaseException | object = exc
        else:
            if value:
                return value
            last = value
        if time.monotonic() >= deadline:
            raise _timed_out(timeout, last)
        time.sleep(interval)


def _timed_out(timeout: float, last: BaseException | object) -> AssertionError:
    if isinstance(last, BaseException):
        error = AssertionError(
            f"condition not met within {timeout}s; last failure: {type(last).__name__}: {last}"
        )
        error.__cause__ = last
        return error
    return AssertionError(f"condition not met within {timeout}s; last returned {last!r}")
