"""The storage contract every backend keeps.

Backends store *documents*: the JSON form of a resource (camelCase, as on the wire) keyed by
collection (the kind's plural) and uid. They know nothing of pydantic models, so a backend
can be tested, benchmarked and swapped on its own. What they must guarantee:

- ``create`` is unique on uid and on ``metadata.name`` within a collection;
- ``update``/``delete`` are compare-and-swap on ``metadata.resourceVersion``: the check and
  the write are one atomic step, so two racing writers can never both win;
- every write is atomic and durable: after a crash a document is the old one or the new one;
- the backend assigns ``resourceVersion``: an opaque string that changes on every write and
  is never reused within a collection (so an ETag built from it names one state of one
  resource, even across a delete and re-create under the same name);
- a write given ``unique=`` keys (see `UniqueKeys`) holds them in the same atomic step,
  or fails with `AlreadyExists` naming the holder when another resource of the collection
  holds one: never check-then-write, so racing writers of one value cannot both win;
  an update releases the keys its document no longer has, a delete all of them;
- spec snapshots of versioned kinds are written in the same atomic step as the document
  they belong to, and go when it goes;
- every write records a `StoredChange` in the collection's *change log* in the same atomic
  step: resourceVersions are integers that grow within a collection, a delete takes a new
  one too, and `changes` hands them out in revision order without gaps (never revision r
  while an earlier one may still commit), so a watcher in any process sharing the storage
  sees every change exactly once. The log is bounded: the oldest changes are compacted away
  and asking for them raises `Gone`.
"""

from __future__ import annotations

import builtins
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal, Protocol, runtime_checkable

from ..resource import Selector
from ._leases import Leases

__all__ = [
    "DEFAULT_CHANGE_HISTORY",
    "AlreadyExists",
    "ChangeType",
    "Conflict",
    "Document",
    "DuplicateValues",
    "Gone",
    "UniqueKeys",
    "Invalid",
    "NotFound",
    "Storage",
    "StorageError",
    "StoredChange",
    "Unavailable",
]

Document = dict[str, Any]
ChangeType = Literal["ADDED", "MODIFIED", "DELETED"]
#: A write's unique keys: constraint name (the fields' JSON paths joined by ``+``) → the
#: document's key for it, or None when the document holds none (an unset value).
UniqueKeys = Mapping[str, str | None]

#: How many changes per collection a backend keeps by default (its `change_history`).
DEFAULT_CHANGE_HISTORY = 10_000


@dataclass(frozen=True, slots=True)
class StoredChange:
    """One entry of a collection's change log.

    `revision` is the resourceVersion the change took (greater than every earlier one of
    the collection); `document` is the state after it: for ``DELETED`` the last state, with
    ``metadata.resourceVersion`` set to `revision` (a delete takes a version of its own).
    """

    revision: int
    type: ChangeType
    document: Document


class StorageError(Exception):
    """Base of every error a backend raises on purpose."""


class NotFound(StorageError):
    def __init__(self, collection: str, key: str) -> None:
        super().__init__(f"{collection}/{key} not found")
        self.collection = collection
        self.key = key


class AlreadyExists(StorageError):
    """A create or update would give a second resource the uid, name or unique value
    `value` of `field` (for a unique constraint: its name, the fields' paths joined by
    ``+``, and its key, see `fabrica.resource.unique_key`); `holder` is the uid of the
    resource holding it, when known."""

    def __init__(self, collection: str, field: str, value: str, holder: str | None = None
                 ) -> None:
        shown = value if len(value) <= 200 else f"{value[:200]}..."
        held = f" (held by {holder})" if holder else ""
        super().__init__(f"{collection} with {field} {shown!r} already exists{held}")
        self.collection = collection
        self.field = field
        self.value = value
        self.holder = holder


class DuplicateValues(StorageError):
    """A unique constraint cannot hold over the stored documents: some already share a
    value. Raised at start (`prepare_unique`); nothing is dropped, the operator decides."""

    def __init__(self, collection: str, constraint: str,
                 duplicates: dict[str, builtins.list[str]]) -> None:
        shown = "; ".join(f"{key[:200]} held by {', '.join(sorted(uids))}"
                          for key, uids in sorted(duplicates.items())[:20])
        more = f" (and {len(duplicates) - 20} more values)" if len(duplicates) > 20 else ""
        super().__init__(
            f"{collection}: {constraint} is unique, but stored resources already share "
            f"values: {shown}{more}. Change or delete the duplicates (or drop Unique) "
            "before starting: none is dropped automatically")
        self.collection = collection
        self.constraint = constraint
        self.duplicates = duplicates


class Conflict(StorageError):
    """The stored resourceVersion is not the one the writer expected."""

    def __init__(self, collection: str, uid: str, expected: str, actual: str) -> None:
        super().__init__(
            f"{collection}/{uid} was modified: expected resourceVersion {expected!r}, "
            f"current is {actual!r}"
        )
        self.collection = collection
        self.uid = uid
        self.expected = expected
        self.actual = actual


class Invalid(StorageError, ValueError):
    """A document or id no backend may store: a malformed uid, name, label or collection,
    or a write that would change a name. The server answers 400; nothing was written."""


class Gone(StorageError):
    """`after` is older than the change log still holds (compacted away, or written before
    the log existed): the reader must list again. The server answers 410."""

    def __init__(self, collection: str, after: int, horizon: int) -> None:
        super().__init__(f"changes of {collection} after {after} are gone: the log starts "
                         f"after {horizon}")
        self.collection = collection
        self.after = after
        self.horizon = horizon


class Unavailable(StorageError):
    """The backend cannot be reached right now (a database restart, a lost connection).

    The request may be retried; the server answers 503 and recovers by itself.
    """


@runtime_checkable
class Storage(Protocol):
    """An async document store; see the module docstring for the guarantees."""

    #: Short backend name for logs and /health, e.g. ``"file"``.
    name: str

    async def get(self, collection: str, uid: str) -> Document: ...

    async def get_by_name(self, collection: str, name: str) -> Document: ...

    async def list(
        self,
        collection: str,
        *,
        selector: Selector | None = None,
        limit: int | None = None,
        after: str | None = None,
    ) -> list[Document]:
        """Documents matching `selector` (labels, and fields prepared by `prepare_fields`)
        whose name sorts after `after`, by name, at most `limit` of them. Keyset paging on
        the immutable, unique name means a client walking pages while others write sees
        each resource that existed throughout exactly once."""
        ...

    async def create(self, collection: str, doc: Document, snapshot: Document | None = None,
                     *, unique: UniqueKeys | None = None) -> Document:
        """Store a new document (and its first spec snapshot), holding its `unique` keys;
        return it with ``resourceVersion`` set."""
        ...

    async def update(
        self,
        collection: str,
        doc: Document,
        expected_version: str,
        snapshot: Document | None = None,
        *,
        unique: UniqueKeys | None = None,
    ) -> Document:
        """Replace the document with ``doc``'s uid if its version is ``expected_version``,
        recording `snapshot` (a spec version) in the same step. With `unique`, the
        document's keys of those constraints become these (None: it holds none); without,
        the keys it holds stay as they are."""
        ...

    async def check_unique(self, collection: str, uid: str, unique: UniqueKeys) -> None:
        """`AlreadyExists` (with its holder) when another resource holds one of `unique`'s
        keys now; holds nothing. For dry runs: a real write holds its keys atomically."""
        ...

    async def prepare_unique(self, collection: str, constraints: Sequence[str]) -> None:
        """Make `constraints` (names as in `UniqueKeys`) the collection's unique ones, at
        start: keys of a new constraint are built from the stored documents (or
        `DuplicateValues` when some share one: nothing is dropped), constraints no longer
        wanted are forgotten."""
        ...

    async def prepare_fields(self, collection: str, paths: Sequence[str]) -> None:
        """Make `paths` (JSON field paths) the collection's selectable fields, at start: a
        backend with a field index keeps them in it from now on, built for the stored
        documents when new (see each backend for how it answers field selectors)."""
        ...

    async def list_versions(self, collection: str, uid: str) -> builtins.list[Document]:
        """Spec snapshots of a document, oldest first."""
        ...

    async def get_version(self, collection: str, uid: str, version_id: str) -> Document: ...

    async def delete_version(self, collection: str, uid: str, version_id: str) -> None: ...

    async def delete(
        self, collection: str, uid: str, expected_version: str | None = None
    ) -> Document:
        """Remove a document (only at ``expected_version`` when given); return what it was."""
        ...

    async def latest(self, collection: str) -> int:
        """The newest revision R such that every change up to R has committed and is
        readable through `changes` (0 for a collection never written), and R covers every
        write that completed before the call: a read answered as of R shows the reader's
        own acknowledged writes (a backend whose writers take numbers before they finish
        waits here for the ones in flight). Cheap: called before every cached read."""
        ...

    async def changes(
        self, collection: str, after: int, limit: int = 1000
    ) -> builtins.list[StoredChange]:
        """Committed changes with revision > `after`, oldest first, at most `limit`, without
        gaps; raises `Gone` when `after` is below the `horizon`."""
        ...

    async def horizon(self, collection: str) -> int:
        """The oldest `after` that `changes` still answers without `Gone`."""
        ...

    async def compact(self, collection: str, keep: int) -> None:
        """Drop the oldest changes so that at most `keep` remain."""
        ...

    def leases(self, namespace: str) -> Leases:
        """The leases the server processes sharing this storage take turns holding (see
        `Leases`): the database's own locks where it has them, else this process's alone.
        `namespace` names the service, so that services sharing one database do not
        hold each other's leases."""
        ...

    async def close(self) -> None: ...
