"""`AsyncInformer`: the asyncio twin of `Informer`, for code that runs on an event loop.

The same list, watch, resume, relist-on-410 loop (see `fabrica.client._informer`), as a task
instead of a thread: stopping cancels the task, which hangs up the watch at once. Handlers may
be plain functions or coroutine functions; they run one at a time, in the order of the changes.
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import logging
from collections.abc import AsyncGenerator
from typing import Any

from ._async_client import AsyncClient
from ._cache import Backoff, Cache, CacheChange
from ._errors import Expired, FabricaError, TooLargeResourceVersion
from ._handlers import FollowState, InformerBase
from ._kinds import KindRef
from ._raw import AsyncRawClient
from ._typed import R

__all__ = ["AsyncInformer", "follow_async"]

log = logging.getLogger("fabrica.client.informer")


async def follow_async(
    raw: AsyncRawClient,
    kind: KindRef,
    cache: Cache[Any],
    *,
    label_selector: str | None = None,
    timeout_seconds: int | None = None,
    backoff: Backoff | None = None,
    field_selector: str | None = None,
) -> AsyncGenerator[list[CacheChange[Any]]]:
    """The async `follow`: list, then watch into `cache`, resuming and relisting for ever
    (until the caller stops iterating or cancels)."""
    state = FollowState(raw.kinds.info(kind).plural, cache, backoff or Backoff())
    while True:
        try:
            if state.relist:
                yield state.listed(*await raw.list_with_version(
                    kind, label_selector, field_selector=field_selector))
            async for event in raw.watch(kind, label_selector, resource_version=state.watch_from(),
                                         allow_bookmarks=True, timeout_seconds=timeout_seconds,
                                         field_selector=field_selector):
                if (change := state.apply(event)) is not None:
                    yield [change]
            if (delay := state.ended()) is not None:
                await asyncio.sleep(delay)
        except Expired as exc:
            state.expired(exc)
        except TooLargeResourceVersion as exc:
            await asyncio.sleep(state.too_new(exc))
        except FabricaError as exc:
            await asyncio.sleep(state.failed(exc))


class AsyncInformer(InformerBase[AsyncClient, R]):
    """`Informer` for asyncio: arguments, handlers and cache methods as there; `start`,
    `stop` and `wait_for_sync` are awaited, and handlers may be coroutine functions::

        async with AsyncInformer(client, Device, on_add=added) as informer:
            await informer.wait_for_sync(10)
    """

    def _setup(self) -> None:
        self._synced = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    @property
    def has_synced(self) -> bool:
        return self._synced.is_set()

    async def wait_for_sync(self, timeout: float | None = None) -> bool:
        """Wait until `has_synced` (True), or `timeout` seconds pass (False)."""
        try:
            async with asyncio.timeout(timeout):  # (wait_for can swallow a cancel)
                await self._synced.wait()
        except TimeoutError:
            return False
        return True

    async def start(self) -> AsyncInformer[R]:
        """Start the informer's task on the running loop (once)."""
        if self._task is None:
            name = f"fabrica-informer-{self.plural}"
            self._task = asyncio.create_task(self._run(), name=name)
        return self

    async def stop(self) -> None:
        """Cancel the task (hanging up the watch) and wait for it to end."""
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    async def __aenter__(self) -> AsyncInformer[R]:
        return await self.start()

    async def __aexit__(self, *exc_info: object) -> None:
        await self.stop()

    async def _run(self) -> None:
        changes = follow_async(self.client.raw, self.kind, self._cache,
                               label_selector=self.label_selector,
                               field_selector=self.field_selector,
                               timeout_seconds=self.timeout_seconds, backoff=self._backoff)
        async with contextlib.aclosing(changes):
            async for batch in changes:
                for change in batch:
                    await self._dispatch(change)
                self._synced.set()

    async def _dispatch(self, change: CacheChange[R]) -> None:
        for handler, args in self.handlers.calls(change):
            try:
                result = handler(*args)
                if inspect.isawaitable(result):
                    await result
            except Exception:
                log.exception("%s handler of %s failed", change.type.lower(),
                              self.plural)
