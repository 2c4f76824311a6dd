"""The informer's local cache: what a list and the watch after it say exists, by uid.

Everything here is bookkeeping without I/O, shared by the sync and async informers and by the
command line's ``list --watch``. Two rules keep handlers correct whatever the network does:

- Each object's own ``resourceVersion`` decides whether an event is news. A watch resumed
  after a disconnect, or started from the first page of a paged list, may replay changes the
  cache already holds; those change nothing and call no handler. (Versions compare as
  integers within a kind, SPEC section 8; other spellings only compare equal or not.)
- A relist (after a 410) replaces the whole cache and reports the difference between the old
  and the new contents as adds, updates and deletes, so a handler that missed the changes in
  between still sees where each object ended up.
"""

from __future__ import annotations

import random
import threading
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Generic, Literal

from typing_extensions import TypeVar

from ..resource import parse_selector
from ._watch import event_version

__all__ = ["Backoff", "Cache", "CacheChange"]

T = TypeVar("T", default=Any)
JSON = dict[str, Any]


@dataclass(frozen=True)
class CacheChange(Generic[T]):
    """What one event (or relist) did to the cache: `object` is the new state (for
    ``DELETED``, the last one known), `old` the state it replaced (None for ``ADDED``)."""

    type: Literal["ADDED", "MODIFIED", "DELETED"]
    object: T
    old: T | None
    raw: JSON  # the object's JSON as the server sent it (the command line prints it)


@dataclass(frozen=True)
class _Entry(Generic[T]):
    obj: T
    raw: JSON
    name: str
    version: str | None
    labels: Mapping[str, str]


class Cache(Generic[T]):
    """Objects by uid, as ``decode(json)``; safe to read from any thread while one writer
    (the informer's loop) applies events."""

    def __init__(self, decode: Callable[[JSON], T]) -> None:
        self._decode = decode
        self._entries: dict[str, _Entry[T]] = {}
        self._lock = threading.Lock()
        self.resource_version: str | None = None

    def replace(self, items: Iterable[JSON], version: str | None) -> list[CacheChange[T]]:
        """Make the cache a list's result; the changes that turn the old contents into it."""
        fresh = {_uid(raw): self._entry(raw) for raw in items}
        with self._lock:
            old, self._entries = self._entries, fresh
            self.resource_version = version
        changes = [_difference(old.get(uid), entry) for uid, entry in fresh.items()]
        gone = [CacheChange("DELETED", e.obj, e.obj, e.raw) for uid, e in old.items()
                if uid not in fresh]
        return [c for c in changes if c is not None] + gone

    def apply(self, event: JSON) -> CacheChange[T] | None:
        """Apply one watch event; the change it made, or None (a bookmark, a replay)."""
        version = event_version(event)
        self._advance(version)
        if event["type"] == "BOOKMARK":
            return None
        raw = event["object"]
        uid = _uid(raw)
        with self._lock:
            old = self._entries.get(uid)
            if event["type"] == "DELETED":
                # a replayed delete finds nothing; a server may stamp a delete with the
                # object's last version rather than one of its own: only older is stale
                if old is None or (version != old.version and not _newer(version, old.version)):
                    return None
                del self._entries[uid]
                return CacheChange("DELETED", self._decode(raw), old.obj, raw)
            if old is not None and not _newer(version, old.version):
                return None  # already seen: a replay after resuming
            entry = self._entries[uid] = self._entry(raw)
        return _difference(old, entry)

    def get(self, id: str) -> T | None:
        """The object with uid (or else name) `id`, or None."""
        with self._lock:
            entry = self._entries.get(id)
            if entry is None:
                entry = next((e for e in self._entries.values() if e.name == id), None)
        return entry.obj if entry is not None else None

    def list(self, label_selector: str | None = None) -> list[T]:
        """The objects whose labels match `label_selector` (all when None), by name."""
        selector = parse_selector(label_selector)
        with self._lock:
            entries = sorted(self._entries.values(), key=lambda e: e.name)
        return [e.obj for e in entries if selector.matches(e.labels)]

    def __len__(self) -> int:
        return len(self._entries)

    def _entry(self, raw: JSON) -> _Entry[T]:
        meta = raw.get("metadata") or {}
        version = meta.get("resourceVersion")
        return _Entry(self._decode(raw), raw, str(meta.get("name") or ""),
                      str(version) if version not in (None, "") else None,
                      dict(meta.get("labels") or {}))

    def _advance(self, version: str | None) -> None:
        with self._lock:
            if version is not None and _newer(version, self.resource_version):
                self.resource_version = version


class Backoff:
    """Exponential delays with jitter between reconnects: ``initial * 2**n`` capped at
    `maximum`, each drawn from its upper half, so many clients cut off together do not
    reconnect together."""

    def __init__(self, initial: float = 0.2, maximum: float = 10.0) -> None:
        self.initial, self.maximum = initial, maximum
        self.failures = 0

    def next(self) -> float:
        delay = min(self.maximum, self.initial * 2.0 ** min(self.failures, 30))
        self.failures += 1
        return delay / 2 + random.uniform(0, delay / 2)

    def reset(self) -> None:
        self.failures = 0


def _uid(raw: JSON) -> str:
    meta = raw.get("metadata") or {}
    return str(meta.get("uid") or meta.get("name") or "")


def _newer(version: str | None, than: str | None) -> bool:
    """Whether `version` comes after `than` (True when either is unknown)."""
    if version is None or than is None:
        return True
    try:
        return int(version) > int(than)
    except ValueError:
        return version != than


def _difference(old: _Entry[T] | None, new: _Entry[T]) -> CacheChange[T] | None:
    if old is None:
        return CacheChange("ADDED", new.obj, None, new.raw)
    if old.version is not None and old.version == new.version:
        return None
    return CacheChange("MODIFIED", new.obj, old.obj, new.raw)
