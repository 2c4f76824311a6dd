"""What the sync and async informers share: everything but their I/O.

`Informer` runs in a thread and `AsyncInformer` in a task, but their arguments, registering
handlers, choosing which to call for a change, reading the local cache and the decisions of the
list-watch loop (when to list again, what an event changes, how long to wait after a failure)
are the same code, kept here once. Each twin keeps only its loop: blocking or awaited calls.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable
from typing import Any, Generic, Protocol, TypeVar

from ._cache import Backoff, Cache, CacheChange
from ._errors import Expired, FabricaError, TooLargeResourceVersion
from ._kinds import Kinds
from ._typed import R, resolve

__all__ = ["FollowState", "Handlers", "InformerBase"]

log = logging.getLogger("fabrica.client.informer")
JSON = dict[str, Any]


class _HasKinds(Protocol):
    @property
    def kinds(self) -> Kinds: ...


C = TypeVar("C", bound=_HasKinds)


class FollowState:
    """The list-watch loop of `kind` without its I/O: whether to list (again), what each
    event does to `cache`, and how long to wait before reconnecting."""

    def __init__(self, plural: str, cache: Cache[Any], backoff: Backoff) -> None:
        self.plural, self.cache, self.backoff = plural, cache, backoff
        self.relist = True
        self._seen = False

    def listed(self, items: Iterable[JSON], version: str | None) -> list[CacheChange[Any]]:
        """Take a list's result; the changes it made to the cache."""
        self.relist = False
        return self.cache.replace(items, version)

    def watch_from(self) -> str | None:
        """Where a new watch starts: the last version seen (nothing seen on it yet)."""
        self._seen = False
        return self.cache.resource_version

    def apply(self, event: JSON) -> CacheChange[Any] | None:
        """Apply one watch event: the connection works, so the backoff starts over."""
        self._seen = True
        self.backoff.reset()
        return self.cache.apply(event)

    def ended(self) -> float | None:
        """A watch ended cleanly: the delay before the next, if it brought nothing (a stream
        that closes at once must not make the loop spin)."""
        return None if self._seen else self.backoff.next()

    def expired(self, exc: Expired) -> None:
        """The server no longer keeps changes that old: list again."""
        log.info("relisting %s: %s", self.plural, exc)
        self.relist = True

    def too_new(self, exc: TooLargeResourceVersion) -> float:
        """The server never reached the version the cache is at (restored from an older
        backup): list again, after the next backoff step (a 504 may come from a proxy
        too, which must not make the loop spin)."""
        delay = self.backoff.next()
        log.warning("relisting %s in %.1fs: %s", self.plural, delay, exc)
        self.relist = True
        return delay

    def failed(self, exc: FabricaError) -> float:
        """The delay before reconnecting after `exc`: the next backoff step."""
        delay = self.backoff.next()
        log.warning("watching %s failed (%s); retrying in %.1fs", self.plural, exc, delay)
        return delay


class Handlers(Generic[R]):
    """The add/update/delete handlers of an informer; each kind may have several."""

    def __init__(self) -> None:
        self.add: list[Callable[[R], Any]] = []
        self.update: list[Callable[[R, R], Any]] = []
        self.delete: list[Callable[[R], Any]] = []

    def calls(self, change: CacheChange[R]) -> list[tuple[Callable[..., Any], tuple[Any, ...]]]:
        """Which handlers to call for `change`, with their arguments."""
        if change.type == "ADDED":
            return [(h, (change.object,)) for h in self.add]
        if change.type == "MODIFIED":
            return [(h, (change.old, change.object)) for h in self.update]
        return [(h, (change.object,)) for h in self.delete]


class InformerBase(Generic[C, R]):
    """Arguments, handlers, cache and reconnect policy of one informer of `kind`, reading
    through `client`; a twin sets up its own running state in `_setup`."""

    def __init__(
        self,
        client: C,
        kind: type[R] | str,
        label_selector: str | None = None,
        *,
        on_add: Callable[[R], Any] | None = None,
        on_update: Callable[[R, R], Any] | None = None,
        on_delete: Callable[[R], Any] | None = None,
        timeout_seconds: int | None = None,
        backoff: float = 0.2,
        max_backoff: float = 10.0,
        field_selector: str | None = None,
    ) -> None:
        self.client = client
        self.kind: type[R] = resolve(client.kinds, kind)
        self.plural = client.kinds.info(self.kind).plural
        self.label_selector = label_selector
        # Narrowed by the server (list and watch), so the cache holds only the selection.
        self.field_selector = field_selector
        self.timeout_seconds = timeout_seconds
        self.handlers: Handlers[R] = Handlers()
        for which, handler in (("add", on_add), ("update", on_update), ("delete", on_delete)):
            if handler is not None:
                getattr(self.handlers, which).append(handler)
        self._cache: Cache[R] = Cache(self.kind.model_validate)
        self._backoff = Backoff(backoff, max_backoff)
        self._setup()

    def _setup(self) -> None:
        """Create the twin's running state (events, thread or task)."""

    def on_add(self, handler: Callable[[R], Any]) -> Callable[[R], Any]:
        """Call ``handler(obj)`` for each object that appears (the first list's included)."""
        self.handlers.add.append(handler)
        return handler

    def on_update(self, handler: Callable[[R, R], Any]) -> Callable[[R, R], Any]:
        """Call ``handler(old, new)`` for each change of an object."""
        self.handlers.update.append(handler)
        return handler

    def on_delete(self, handler: Callable[[R], Any]) -> Callable[[R], Any]:
        """Call ``handler(obj)``, with its last known state, for each object that goes."""
        self.handlers.delete.append(handler)
        return handler

    def get(self, id: str) -> R | None:
        """The cached object with this uid or name, or None."""
        return self._cache.get(id)

    def list(self, label_selector: str | None = None) -> list[R]:
        """The cached objects (by name), those matching `label_selector` when given."""
        return self._cache.list(label_selector)

    def __len__(self) -> int:
        return len(self._cache)

    @property
    def resource_version(self) -> str | None:
        """The last version seen: where the watch resumes after a disconnect."""
        return self._cache.resource_version
