"""The objects of one kind as of one revision, in memory, and how to read such a state from
storage exactly.

`KindObjects` is the watch cache's copy of a collection: entries by uid, the uid of each
name and the names in order (lists page by name), with what a list or a get needs at hand:
name, labels, resourceVersion, the values of the kind's selectable fields and, once first
asked for, the wire JSON in the storage API version (the parsed document is then dropped: a
cached Device costs its bytes, not a tree of Python objects). For ``?fieldSelector=`` it
keeps an index per selectable field (value → uids): a list by ``spec.mac=X`` looks at the
resources holding X, not at the whole kind (only a selector of ``!=`` terms alone, whose
answer is most of the kind anyway, walks the names).

`exact_snapshot` answers "which documents, at which revision?" from storage alone, for a
cache being filled and for lists served from storage: a storage list is no snapshot (writes
land while it reads), so it reads the change log around the list: ``R0 = latest()``, list,
then every change after R0 until the log has caught up with everything the list saw; each
document's newest known state wins. What comes out reflects exactly the changes up to the
returned revision: a watch from it neither misses nor repeats one.
"""

from __future__ import annotations

import asyncio
import bisect
import json
import logging
from collections.abc import Callable, Iterable, Iterator, Mapping
from functools import partial
from typing import Any

from ..resource import FieldValues, Selector, document_fields, field_text, field_value
from ..storage import Document, Storage, StoredChange

__all__ = ["Entry", "KindObjects", "Render", "exact_objects", "exact_snapshot", "revision_of"]

#: The field every entry answers from its name (not kept twice).
NAME_FIELD = "metadata.name"
#: Uids holding one value of one field: the one uid as itself (a unique field's values
#: cost no set each), a set once there are more.
Holders = str | set[str]

#: (document, API version) → the resource's wire JSON; the store's validated rendering.
Render = Callable[[Document, str], bytes]
log = logging.getLogger("fabrica.store")
_BATCH = 1000
_CATCH_UP_ATTEMPTS = 50


def revision_of(doc: Document) -> int:
    """A stored document's resourceVersion as the integer the change log orders by."""
    return int(doc["metadata"]["resourceVersion"])


class Entry:
    """One cached resource: what reads need, and its wire JSON in the storage version."""

    __slots__ = ("_doc", "_raw", "_wire", "fields", "labels", "name", "revision", "uid")

    def __init__(self, doc: Document, *, compact: bool = False,
                 paths: tuple[str, ...] = ()) -> None:
        """`compact`: keep the document as JSON bytes rather than as Python objects (a
        tenth of the memory), for entries that may wait long for their first read.
        `paths`: the selectable fields whose values (`field_text`) to keep, in that order
        (a tuple: a dict per entry would cost more than a small document), but the name,
        which it has anyway."""
        meta = doc["metadata"]
        self.uid: str = meta["uid"]
        self.name: str = meta["name"]
        self.labels: Mapping[str, str] = meta.get("labels") or {}
        self.fields: tuple[str, ...] = tuple(field_text(field_value(doc, path))
                                             for path in paths if path != NAME_FIELD)
        self.revision = revision_of(doc)
        self._doc: Document | None = None if compact else doc
        self._raw: bytes | None = _encode(doc) if compact else None
        self._wire: bytes | None = None

    @property
    def resource_version(self) -> str:
        return str(self.revision)

    def document(self) -> Document:
        """The stored document (parsed again from the wire JSON once that is made)."""
        if self._doc is not None:
            return self._doc
        raw = self._raw if self._raw is not None else self._wire
        assert raw is not None
        doc: Document = json.loads(raw)
        return doc

    def wire(self, storage_version: str, api_version: str, render: Render) -> bytes:
        """The wire JSON in `api_version`; the storage version's is kept, the rest are
        the renderer's business (the store caches them)."""
        if api_version != storage_version:
            return render(self.document(), api_version)
        if self._wire is None:
            self._wire = render(self.document(), api_version)
            self._doc = self._raw = None
        return self._wire


class KindObjects:
    """The resources of one kind, by uid and by name, names kept sorted for paging.

    A name belongs to one resource at a time (`names`, `by_name` and `entries` hold the same
    resources, each name once). A change that gives a name to a new uid while the cache
    still has another uid under it (a log out of that order: a delete that crashed after
    removing its document never logs its DELETED) drops the old holder: the newest change
    of a name wins, as a fresh list of the storage would show it.
    """

    def __init__(self, entries: Iterable[Entry] = (), paths: Iterable[str] = ()) -> None:
        """`paths`: the selectable fields to index (the entries were made with them)."""
        self.paths = tuple(path for path in paths if path != NAME_FIELD)
        self._position = {path: index for index, path in enumerate(self.paths)}
        self.entries: dict[str, Entry] = {}
        self.by_name: dict[str, str] = {}
        for entry in entries:
            held = self.entries.get(self.by_name.get(entry.name, ""))
            if held is not None and held.revision > entry.revision:
                continue
            if held is not None:
                del self.entries[held.uid]
            self.entries[entry.uid] = entry
            self.by_name[entry.name] = entry.uid
        self.names: list[str] = sorted(self.by_name)
        self.index: list[dict[str, Holders]] = [{} for _ in self.paths]
        for entry in self.entries.values():
            self._index(entry)

    def __len__(self) -> int:
        return len(self.entries)

    def apply(self, change: StoredChange) -> Entry | None:
        """Apply one change (newer than every state held); the resource's entry before it
        (its labels and fields), None when it did not exist."""
        uid = change.document["metadata"]["uid"]
        old = self.entries.get(uid)
        if change.type == "DELETED":
            if old is not None:
                self._remove(old)
            return old
        entry = Entry(change.document, paths=self.paths)
        if old is not None:
            self._unindex(old)
        self.entries[uid] = entry
        self._index(entry)
        if old is None:
            self._claim(entry)
        return old

    def value(self, entry: Entry, path: str) -> str:
        """One of `entry`'s selectable fields, as `field_text` gives it."""
        if path == NAME_FIELD:
            return entry.name
        position = self._position.get(path)
        return "" if position is None else entry.fields[position]

    def values(self, entry: Entry) -> FieldValues:
        return partial(self.value, entry)

    def holders(self, path: str, value: str) -> set[str]:
        """The uids whose `path` holds `value`."""
        if path == NAME_FIELD:
            uid = self.by_name.get(value)
            return set() if uid is None else {uid}
        position = self._position.get(path)
        held = None if position is None else self.index[position].get(value)
        return set() if held is None else {held} if isinstance(held, str) else held

    def _index(self, entry: Entry) -> None:
        for values, value in zip(self.index, entry.fields, strict=True):
            held = values.get(value)
            if held is None:
                values[value] = entry.uid
            elif isinstance(held, str):
                values[value] = {held, entry.uid}
            else:
                held.add(entry.uid)

    def _unindex(self, entry: Entry) -> None:
        for values, value in zip(self.index, entry.fields, strict=True):
            held = values.get(value)
            if held == entry.uid:
                del values[value]
            elif isinstance(held, set):
                held.discard(entry.uid)
                if len(held) == 1:
                    values[value] = held.pop()

    def _claim(self, entry: Entry) -> None:
        """Give `entry`'s name to it (a new uid in the cache)."""
        held = self.by_name.get(entry.name)
        self.by_name[entry.name] = entry.uid
        if held is None:
            bisect.insort(self.names, entry.name)
            return
        log.warning("change %s gives the name %r to %s while %s still holds it in the "
                    "cache; %s is dropped", entry.revision, entry.name, entry.uid, held, held)
        dropped = self.entries.pop(held, None)
        if dropped is not None:
            self._unindex(dropped)

    def _remove(self, entry: Entry) -> None:
        del self.entries[entry.uid]
        self._unindex(entry)
        if self.by_name.get(entry.name) == entry.uid:
            del self.by_name[entry.name]
            index = bisect.bisect_left(self.names, entry.name)
            if index < len(self.names) and self.names[index] == entry.name:
                del self.names[index]

    def find(self, id: str, is_uid: bool) -> Entry | None:
        """By uid, else by name (a name may look like a uid), as `ResourceStore.get`."""
        if is_uid and (entry := self.entries.get(id)) is not None:
            return entry
        uid = self.by_name.get(id)
        return None if uid is None else self.entries.get(uid)

    def page(self, selector: Selector | None, limit: int | None, after: str | None
             ) -> list[Entry]:
        """Matching entries by name, after `after`, at most `limit` (as `Storage.list`)."""
        candidates = self._candidates(selector)
        if candidates is not None:
            return self._page_of(candidates, selector, limit, after)
        start = 0 if after is None else bisect.bisect_right(self.names, after)
        found: list[Entry] = []
        for entry in self._from(start):
            if selector and not selector.matches(entry.labels, self.values(entry)):
                continue
            found.append(entry)
            if limit is not None and len(found) >= limit:
                break
        return found

    def _candidates(self, selector: Selector | None) -> set[str] | None:
        """The uids an equality field requirement allows (the fewest of any), or None
        when the selector has none (then every entry is a candidate)."""
        best: set[str] | None = None
        for requirement in selector.fields if selector else ():
            if requirement.operator != "=":
                continue
            held = self.holders(requirement.path, requirement.value)
            if best is None or len(held) < len(best):
                best = held
        return best

    def _page_of(self, uids: set[str], selector: Selector | None, limit: int | None,
                 after: str | None) -> list[Entry]:
        found = [entry for uid in uids if (entry := self.entries.get(uid)) is not None
                 and (after is None or entry.name > after)
                 and (not selector or selector.matches(entry.labels, self.values(entry)))]
        found.sort(key=_entry_name)
        return found[:limit] if limit is not None else found

    def _from(self, start: int) -> Iterator[Entry]:
        entries, by_name = self.entries, self.by_name
        for name in self.names[start:]:
            yield entries[by_name[name]]


async def exact_snapshot(
    storage: Storage,
    collection: str,
    *,
    selector: Selector | None = None,
    limit: int | None = None,
    after: str | None = None,
) -> tuple[int, list[Document]]:
    """(R, the page of `Storage.list` as of revision R): see the module docstring."""
    start = await storage.latest(collection)
    docs = await storage.list(collection, selector=selector, limit=limit, after=after)
    newest = max((revision_of(doc) for doc in docs), default=start)
    states: dict[str, tuple[int, Document | None]] = {
        doc["metadata"]["uid"]: (revision_of(doc), doc) for doc in docs}
    revision = await _catch_up(storage, collection, start, max(start, newest), states)
    page = _page(states, docs, selector, limit, after)
    return revision, page


async def exact_objects(storage: Storage, collection: str, page_size: int = 1000,
                        most: int | None = None, paths: tuple[str, ...] = ()
                        ) -> tuple[int, list[Entry]]:
    """(R, every resource as of revision R) as compact entries, read page by page so that
    no more than a page of parsed documents is held at once (a cache of 100,000 resources
    is filled without first holding 100,000 documents as Python objects). Past `most`
    resources it stops reading: the caller gets more than `most`, and no revision."""
    start = await storage.latest(collection)
    states: dict[str, tuple[int, Entry | None]] = {}
    newest, after = start, None
    while True:
        docs = await storage.list(collection, limit=page_size, after=after)
        for doc in docs:
            entry = Entry(doc, compact=True, paths=paths)
            states[entry.uid] = (entry.revision, entry)
            newest = max(newest, entry.revision)
        if len(docs) < page_size:
            break
        if most is not None and len(states) > most:
            return start, [entry for _, entry in states.values() if entry is not None]
        after = docs[-1]["metadata"]["name"]
    revision = await _catch_up(storage, collection, start, newest, states,
                               lambda doc: Entry(doc, compact=True, paths=paths))
    return revision, [entry for _, entry in states.values() if entry is not None]


async def _catch_up(storage: Storage, collection: str, after: int, until: int,
                    states: dict[str, tuple[int, Any]],
                    keep: Callable[[Document], Any] = lambda doc: doc) -> int:
    """Read the changes after `after` until the log is at least at `until` and has no more;
    each uid's newest state into `states`. The revision reached."""
    revision = after
    waits = 0
    while waits < _CATCH_UP_ATTEMPTS:
        batch = await storage.changes(collection, revision, _BATCH)
        for change in batch:
            uid = change.document["metadata"]["uid"]
            known = states.get(uid)
            if known is None or known[0] < change.revision:
                kept = None if change.type == "DELETED" else keep(change.document)
                states[uid] = (change.revision, kept)
            revision = change.revision
        if len(batch) < _BATCH and revision >= until:
            return revision
        if not batch:  # a write the list saw is still committing: its turn comes
            waits += 1
            await asyncio.sleep(0.005 * waits)
    raise TimeoutError(f"the {collection} change log did not reach revision {until}")


def _page(states: dict[str, tuple[int, Document | None]], listed: list[Document],
          selector: Selector | None, limit: int | None, after: str | None) -> list[Document]:
    """The listed page, corrected by the changes: gone or no longer matching out, new
    matches in; when the list was a full page, nothing beyond its last name comes in (that
    belongs to the next page)."""
    last = listed[-1]["metadata"]["name"] if limit and len(listed) >= limit else None
    page: list[Document] = []
    for _, doc in states.values():
        if doc is None:
            continue
        name = doc["metadata"]["name"]
        if after is not None and name <= after or last is not None and name > last:
            continue
        if selector and not selector.matches(doc["metadata"].get("labels") or {},
                                             document_fields(doc)):
            continue
        page.append(doc)
    page.sort(key=_name)
    return page[:limit] if limit else page


def _entry_name(entry: Entry) -> str:
    return entry.name


def _name(doc: Document) -> Any:
    return doc["metadata"]["name"]


def _encode(doc: Document) -> bytes:
    return json.dumps(doc, separators=(",", ":"), ensure_ascii=False).encode()
