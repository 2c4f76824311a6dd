"""Watchers: one per open watch, fed by its kind's feed, never holding up anyone else.

A feed hands every watcher each batch of changes it applies (`Record`s, shared by all);
the watcher keeps them in a bounded queue and its own task (the HTTP stream) turns them
into watch event lines when it gets to them. Handing over is appending to a deque: a
writer or the feed never waits for a watcher. A watcher whose queue would grow beyond its
bound has fallen too far behind: its queue is dropped and it ends with an ERROR 410 event,
after which its client lists and watches again (as a Kubernetes informer does).

Each event line is encoded once per (change, event type, API version) and shared by every
watcher that sends it. With a label or field selector an event follows Kubernetes: a
resource that starts to match is ADDED, one that stops matching is DELETED (with its new
state). That needs the labels and selectable fields the resource had before the change,
which the feed records while the kind is cached; for changes read back from the storage log
(a resume older than the feed's memory, or a kind too large to cache) they are known from
the second change of a resource on, and before that a change that does not match is sent
as DELETED (a client deletes what it may not have: informers ignore that).
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections import deque
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

from ..resource import API_VERSION, FieldValues, Selector, document_fields
from ..storage import Document, Gone, Storage, StoredChange
from ._watch_memory import WatchMemory

__all__ = ["UNKNOWN", "Encode", "Record", "Watcher", "error_line"]

log = logging.getLogger("fabrica.store")

#: (document, API version) → wire JSON of the resource (the store's cached rendering).
Encode = Callable[[Document, str], bytes]
#: The labels before a change when they are not known.
UNKNOWN: Mapping[str, str] = {"": "unknown"}
_INITIAL_CHUNK = 500
#: The initial objects go out in chunks of about this many bytes: a client that reads
#: nothing holds one or two of them, not its whole collection.
_INITIAL_CHUNK_BYTES = 64 * 1024
_BATCH = 1000


def _no_fields(path: str) -> str:
    return ""


class Record:
    """One change as the feed applied it, with the labels and field values the resource
    had before (`prev` None: it did not exist; `UNKNOWN`), and its encoded event lines."""

    __slots__ = ("_lines", "change", "labels", "prev", "prev_fields", "revision")

    def __init__(self, change: StoredChange, prev: Mapping[str, str] | None,
                 prev_fields: FieldValues = _no_fields) -> None:
        self.change = change
        self.revision = change.revision
        self.labels: Mapping[str, str] = change.document["metadata"].get("labels") or {}
        self.prev = prev
        self.prev_fields = prev_fields
        self._lines: dict[tuple[str, str], bytes] = {}

    def fields(self) -> FieldValues:
        """The resource's field values after the change."""
        return document_fields(self.change.document)

    def event_type(self, selector: Selector | None) -> str | None:
        """The event this change is for a watcher of `selector`, None if none."""
        kind = self.change.type
        if not selector:
            return kind
        now = kind != "DELETED" and selector.matches(self.labels, self.fields())
        if kind == "ADDED":  # nothing before it, whatever the feed knows
            was: bool | None = False
        elif self.prev is UNKNOWN:
            was = None if kind != "DELETED" else selector.matches(self.labels, self.fields())
        else:
            was = self.prev is not None and selector.matches(self.prev, self.prev_fields)
        if kind == "DELETED":
            return "DELETED" if was else None
        if now:
            return "ADDED" if kind == "ADDED" or was is False else "MODIFIED"
        return None if was is False else "DELETED"

    def line(self, kind: str, api_version: str, encode: Encode) -> bytes:
        key = (kind, api_version)
        line = self._lines.get(key)
        if line is None:
            line = event_line(kind, encode(self.change.document, api_version))
            self._lines[key] = line
        return line


def event_line(kind: str, wire: bytes) -> bytes:
    return b'{"type":"' + kind.encode() + b'","object":' + wire + b"}\n"


def error_line(code: int, reason: str, message: str,
               details: dict[str, Any] | None = None) -> bytes:
    """An ERROR event whose object is a Kubernetes Status."""
    status: dict[str, Any] = {"kind": "Status", "apiVersion": API_VERSION, "metadata": {},
                              "status": "Failure", "message": message, "reason": reason,
                              "code": code}
    if details:
        status["details"] = details
    return event_line("ERROR", json.dumps(status, separators=(",", ":")).encode())


class Watcher:
    """One watch: its start (initial objects or a backlog), then the feed's changes.

    `cursor` is the newest revision it has dealt with (sent or filtered out): an event
    at or below it is never sent again, so the start and the live changes may overlap.
    The initial objects are `initial`, each sent as `render(item)`: the cache's entries
    (shared), or with `private`, JSON bytes of this watcher's own (an uncached kind),
    which `memory` charges to it with the chunks it has handed out (`WatchMemory`).
    """

    def __init__(
        self,
        *,
        kind: str,
        selector: Selector | None,
        api_version: str,
        cursor: int,
        queue_size: int,
        encode: Encode,
        initial: Sequence[Any] = (),
        render: Callable[[Any], bytes] | None = None,
        private: bool = False,
        memory: WatchMemory | None = None,
        backlog: Iterable[Record] = (),
        fetch: tuple[Storage, str, int] | None = None,
        on_close: Callable[[Watcher], None] | None = None,
    ) -> None:
        self.kind = kind
        self.selector = selector
        self.api_version = api_version
        self.cursor = cursor
        self.queue_size = queue_size
        self._encode = encode
        self._initial = deque(initial)
        self._render = render or (lambda item: item)
        self._private = sum(map(len, initial)) if private else 0  # bytes not yet sent
        self._memory = memory
        self._handed: deque[int] = deque((0, 0), maxlen=2)  # the last chunks' sizes
        self._queue: deque[Record] = deque(backlog)
        self._fetch = fetch  # (storage, collection, until): a backlog still in the log
        self._seen: dict[str, Record] = {}  # each resource's last change of a backlog
        self._ready = asyncio.Event()
        self._stopped = asyncio.Event()
        self._error: bytes | None = None
        self._closed = False
        self._done = False
        self._on_close = on_close
        self._charge()

    # -- the feed's side -----------------------------------------------------------------

    def offer(self, records: list[Record]) -> None:
        """Queue a batch; never waits. Too many queued: the watcher expires."""
        if self._closed or self._error is not None or records[-1].revision <= self.cursor:
            return
        if len(self._queue) + len(records) > self.queue_size:
            self.expire("the watch fell too far behind the changes; list and watch again")
            return
        self._queue.extend(records)
        self._ready.set()

    def expire(self, message: str, *, cut: bool = False) -> None:
        """End with ERROR 410 (the client starts again from a list); with `cut`, a stream
        stuck sending to a client that reads nothing is cut rather than waited for."""
        if self._error is None and not self._closed:
            self._error = error_line(410, "Expired", message)
            self._queue.clear()
            self._initial.clear()
            self._private = 0
            self._charge()
            self._ready.set()
            if cut:
                self._stopped.set()

    def close(self) -> None:
        """End the stream (shutdown, or the client left)."""
        if not self._closed:
            self._closed = True
            self._queue.clear()
            self._initial.clear()
            self._private = 0
            self._handed.extend((0, 0))
            self._charge()
            self._ready.set()
            self._stopped.set()
            if self._on_close is not None:
                self._on_close(self)

    async def stopped(self) -> None:
        """Until the watch is closed: its stream ends, even one stuck sending to a client
        that reads nothing."""
        await self._stopped.wait()

    # -- the stream's side ---------------------------------------------------------------

    async def next(self, timeout: float | None) -> list[bytes] | None:
        """The next lines to send ([] when `timeout` passed first); None: the end.

        Called again, it knows the stream has handed the previous lines on."""
        lines = await self._next(timeout)
        if lines:
            self._handed.append(sum(map(len, lines)))
            self._charge()
        return lines

    async def _next(self, timeout: float | None) -> list[bytes] | None:
        if self._done or self._closed:
            self.close()
            return None
        if self._error is not None:
            self._done = True
            return [self._error]
        if self._initial:
            return self._initial_lines()
        if self._fetch is not None:
            return await self._fetch_backlog(*self._fetch)
        if not self._queue:
            self._ready.clear()
            try:
                async with asyncio.timeout(timeout):  # (wait_for can swallow a cancel)
                    await self._ready.wait()
            except TimeoutError:
                return []
            if self._error is not None or self._closed:
                return await self._next(timeout)
        records = list(self._queue)
        self._queue.clear()
        return self._lines(records)

    @property
    def settled(self) -> bool:
        """Past its start (initial objects, a backlog read from the log): a bookmark now
        tells the truth."""
        return not self._initial and self._fetch is None

    def bookmark(self) -> bytes:
        """A BOOKMARK event: everything up to `cursor` has been sent."""
        obj = {"kind": self.kind, "apiVersion": API_VERSION,
               "metadata": {"resourceVersion": str(self.cursor)}}
        return event_line("BOOKMARK", json.dumps(obj, separators=(",", ":")).encode())

    def _initial_lines(self) -> list[bytes]:
        lines: list[bytes] = []
        size = 0
        while self._initial and len(lines) < _INITIAL_CHUNK and size < _INITIAL_CHUNK_BYTES:
            item = self._initial.popleft()
            if self._private:
                self._private -= len(item)
            try:
                lines.append(event_line("ADDED", self._render(item)))
            except Exception:  # a stored document no longer valid: skip, say so
                log.exception("cannot encode a %s for a watch", self.kind)
                continue
            size += len(lines[-1])
        return lines

    def _charge(self) -> None:
        if self._memory is not None:
            self._memory.hold(self, self._private + sum(self._handed))

    async def _fetch_backlog(self, storage: Storage, collection: str, until: int
                             ) -> list[bytes] | None:
        """The next changes of a backlog older than the feed's memory, from the log."""
        try:
            batch = await storage.changes(collection, self.cursor, _BATCH)
        except Gone as exc:
            self._fetch = None
            self.expire(f"resourceVersion {exc.after} is too old: the change log starts "
                        f"after {exc.horizon}")
            return await self._next(0)
        records = []
        for change in batch:
            if change.revision > until:
                break
            uid = change.document["metadata"]["uid"]
            seen = self._seen.get(uid)
            records.append(Record(change, UNKNOWN) if seen is None
                           else Record(change, seen.labels, seen.fields()))
            self._seen[uid] = records[-1]
        if not batch or batch[-1].revision >= until:
            self._fetch = None
            self._seen.clear()
        return self._lines(records)

    def _lines(self, records: list[Record]) -> list[bytes]:
        if not self.selector and records and records[0].revision > self.cursor:
            try:  # the common case, every watcher of a kind alike: each line as encoded
                lines = [r.line(r.change.type, self.api_version, self._encode)
                         for r in records]
            except Exception:  # a document no longer valid: one by one, below, to skip it
                pass
            else:
                self.cursor = records[-1].revision
                return lines
        lines = []
        for record in records:
            if record.revision <= self.cursor:
                continue
            self.cursor = record.revision
            kind = record.event_type(self.selector)
            if kind is None:
                continue
            try:
                lines.append(record.line(kind, self.api_version, self._encode))
            except Exception:
                log.exception("cannot encode %s %s for a watch", self.kind,
                              record.change.document["metadata"].get("uid"))
        return lines

