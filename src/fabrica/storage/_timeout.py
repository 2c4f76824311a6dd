"""`with_timeout`: a bound on how long any storage operation may hold a request.

A database that stops answering without closing its connections (frozen, a network
partition, a full disk on NFS) would hold every request for as long as it lasts: the
drivers wait forever. Past the bound the caller gets `Unavailable` (503 with Retry-After).

The operation itself is not cancelled but left to finish in the background: cancelling a
driver mid-query makes it clean up over the same dead connection (a rollback, a cancel
request), which waits just as long. The connection pool bounds how many such operations
can be pending at once. A write that times out may still commit later; the client was told
to retry, and its retry meets the committed state (a 409 for a create, a 412 with If-Match).
"""

from __future__ import annotations

import asyncio
import functools
import inspect
import logging
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar, cast

from ._base import Storage, Unavailable
from ._leases import Leases

__all__ = ["with_timeout"]

log = logging.getLogger("fabrica.storage")
T = TypeVar("T")


def with_timeout(storage: Storage, seconds: float | None) -> Storage:
    """`storage` with every operation bounded by `seconds` (None or 0: unbounded).

    Every coroutine method of the backend is bounded, whatever its name and options (the
    change log's, the SQL outbox's...): a method added to a backend can never slip past
    the bound. Other attributes (``name``, ``url``, ``supports_outbox``) pass through.
    """
    if not seconds:
        return storage
    return cast(Storage, _TimeLimited(storage, seconds))


class _TimeLimited:
    def __init__(self, storage: Storage, seconds: float) -> None:
        self.inner = storage
        self.seconds = seconds
        self.name = storage.name
        self._pending: set[asyncio.Task[Any]] = set()
        # Bound methods made up front, as instance attributes: `isinstance(x, Storage)`
        # looks them up statically, so `__getattr__` alone would not do.
        for name in dir(storage):
            method = getattr(storage, name, None)
            if (not name.startswith("_") and name != "close"
                    and inspect.iscoroutinefunction(method)):
                setattr(self, name, self._bound_method(name, method))

    def __getattr__(self, name: str) -> Any:  # url, database...: whatever the backend has
        return getattr(self.inner, name)

    def __repr__(self) -> str:
        return f"with_timeout({self.inner!r}, {self.seconds})"

    def _bound_method(self, name: str, method: Callable[..., Awaitable[T]]
                      ) -> Callable[..., Awaitable[T]]:
        @functools.wraps(method)
        async def bounded(*args: Any, **kwargs: Any) -> T:
            return await self._bounded(name, method(*args, **kwargs))

        return bounded

    async def _bounded(self, what: str, operation: Awaitable[T]) -> T:
        task = asyncio.ensure_future(operation)
        try:
            # Not wait_for: on Python 3.11 it can swallow the caller's cancellation when the
            # operation completes at the same moment (a task being stopped would run on).
            done, _ = await asyncio.wait({task}, timeout=self.seconds)
        except asyncio.CancelledError:
            task.cancel()  # the caller gave up: as without a bound
            raise
        if done:
            return task.result()
        self._pending.add(task)
        task.add_done_callback(self._finished)
        raise Unavailable(f"{self.name} storage did not answer {what} within "
                          f"{self.seconds:g} s")

    def _finished(self, task: asyncio.Task[Any]) -> None:
        self._pending.discard(task)
        if not task.cancelled() and (exc := task.exception()) is not None:
            log.info("a storage operation that timed out ended later: %s", exc)

    def leases(self, namespace: str) -> Leases:
        # Not bounded: a lease statement has its own timeout, and its connection is not the
        # pool's the bound protects.
        return self.inner.leases(namespace)

    async def close(self) -> None:
        for task in list(self._pending):  # the database never answered: stop waiting
            task.cancel()
        await self.inner.close()
