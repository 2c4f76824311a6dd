"""What the sync and async informers share: their handlers and their view of the cache.

`Informer` runs in a thread and `AsyncInformer` in a task, but registering handlers, choosing
which to call for a change and reading the local cache are the same code, kept here once.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any, Generic

from ._cache import Backoff, Cache, CacheChange
from ._kinds import Kinds
from ._typed import R, resolve

__all__ = ["Handlers", "InformerBase"]


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


class InformerBase(Generic[R]):
    """Handlers, cache and reconnect policy of one informer of `kind`."""

    def __init__(
        self,
        kinds: Kinds,
        kind: type[R] | str,
        label_selector: str | None,
        handlers: Iterable[tuple[str, Callable[..., Any] | None]],
        timeout_seconds: int | None,
        backoff: Backoff,
    ) -> None:
        self.kind: type[R] = resolve(kinds, kind)
        self.plural = kinds.info(self.kind).plural
        self.label_selector = label_selector
        self.timeout_seconds = timeout_seconds
        self.handlers: Handlers[R] = Handlers()
        for which, handler in handlers:
            if handler is not None:
                getattr(self.handlers, which).append(handler)
        self._cache: Cache[R] = Cache(self.kind.model_validate)
        self._backoff = backoff

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
