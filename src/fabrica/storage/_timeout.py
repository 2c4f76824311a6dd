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
import builtins
import logging
from collections.abc import Awaitable
from typing import Any, TypeVar

from ..resource import Selector
from ._base import Document, Storage, Unavailable

__all__ = ["with_timeout"]

log = logging.getLogger("fabrica.storage")
T = TypeVar("T")


def with_timeout(storage: Storage, seconds: float | None) -> Storage:
    """`storage` with every operation bounded by `seconds` (None or 0: unbounded)."""
    if not seconds:
        return storage
    return _TimeLimited(storage, seconds)


class _TimeLimited:
    def __init__(self, storage: Storage, seconds: float) -> None:
        self.inner = storage
        self.seconds = seconds
        self.name = storage.name
        self._pending: set[asyncio.Task[Any]] = set()

    def __getattr__(self, name: str) -> Any:  # url, database...: whatever the backend has
        return getattr(self.inner, name)

    def __repr__(self) -> str:
        return f"with_timeout({self.inner!r}, {self.seconds})"

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

    async def get(self, collection: str, uid: str) -> Document:
        return await self._bounded("get", self.inner.get(collection, uid))

    async def get_by_name(self, collection: str, name: str) -> Document:
        return await self._bounded("get", self.inner.get_by_name(collection, name))

    async def list(
        self,
        collection: str,
        *,
        selector: Selector | None = None,
        limit: int | None = None,
        after: str | None = None,
    ) -> builtins.list[Document]:
        return await self._bounded("list", self.inner.list(
            collection, selector=selector, limit=limit, after=after))

    async def create(self, collection: str, doc: Document, snapshot: Document | None = None,
                     **options: Any) -> Document:
        # `options`: what a backend takes beyond the protocol (the SQL outbox's events)
        return await self._bounded("create", self.inner.create(
            collection, doc, snapshot, **options))

    async def update(
        self,
        collection: str,
        doc: Document,
        expected_version: str,
        snapshot: Document | None = None,
        **options: Any,
    ) -> Document:
        return await self._bounded("update", self.inner.update(
            collection, doc, expected_version, snapshot, **options))

    async def list_versions(self, collection: str, uid: str) -> builtins.list[Document]:
        return await self._bounded("list", self.inner.list_versions(collection, uid))

    async def get_version(self, collection: str, uid: str, version_id: str) -> Document:
        return await self._bounded("get", self.inner.get_version(collection, uid, version_id))

    async def delete_version(self, collection: str, uid: str, version_id: str) -> None:
        await self._bounded("delete", self.inner.delete_version(collection, uid, version_id))

    async def delete(
        self, collection: str, uid: str, expected_version: str | None = None, **options: Any
    ) -> Document:
        return await self._bounded("delete", self.inner.delete(
            collection, uid, expected_version, **options))

    async def close(self) -> None:
        for task in list(self._pending):  # the database never answered: stop waiting
            task.cancel()
        await self.inner.close()
