"""Bulk reads and writes for backup and restore (SPEC section 11), beside the `Storage`
contract rather than in it: a backend that offers them is a `BulkStorage`.

- `BulkStorage.export_snapshot` hands every document of some collections, with its spec
  snapshots, to a `SnapshotWriter`, all as of one consistent state: what the collections
  held at one revision each, whatever writers do meanwhile. How each backend gets that cut
  is in its own ``_bulk`` module.
- `BulkStorage.write_batch` writes many documents in one step keeping their uids, names and
  metadata (the backend still gives each a new resourceVersion and logs its change): on SQL
  one transaction, so a batch is all there or not at all; on files each document whole or
  not at all. Each document goes through the backend's own create/update/delete, so every
  per-write duty of the backend (labels, change log, indexes of unique fields, the outbox)
  is done for imported documents as for any other, unique keys included (each item's
`BulkItem.unique`).
"""

from __future__ import annotations

import builtins
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Literal, Protocol, runtime_checkable

from ._base import Document, Storage, UniqueKeys
from ._outbox import Outbox

__all__ = ["BatchMode", "BulkItem", "BulkStorage", "SnapshotWriter"]

#: ``create`` refuses a uid or name that exists; ``upsert`` overwrites it; ``update``
#: compare-and-swaps each document on the resourceVersion it carries (`Conflict` or
#: `NotFound` otherwise; on SQL then none of the batch is written).
BatchMode = Literal["create", "upsert", "update"]


@dataclass(frozen=True, slots=True)
class BulkItem:
    """One document to write, with its spec snapshots (oldest first) and the unique keys
    it holds (the ``unique=`` of a single write; None for a kind without unique fields)."""

    document: Document
    history: builtins.list[Document] = field(default_factory=list)
    unique: UniqueKeys | None = None


class SnapshotWriter(Protocol):
    """Where `export_snapshot` puts what it reads."""

    def start(self, counts: dict[str, int], revisions: dict[str, int]) -> None:
        """Before any document: how many documents each collection holds in the snapshot
        and the revision it was taken at."""

    def document(self, collection: str, doc: Document, history: builtins.list[Document]
                 ) -> None:
        """One document as stored (sensitive values included as stored), and its spec
        snapshots, oldest first; collection after collection, each by name."""


@runtime_checkable
class BulkStorage(Storage, Protocol):
    async def export_snapshot(self, collections: Sequence[str], writer: SnapshotWriter
                              ) -> None:
        """Every document of `collections` as of one consistent state, to `writer`."""
        ...

    async def write_batch(self, collection: str, items: Sequence[BulkItem], *,
                          mode: BatchMode, remove: Sequence[str] = (),
                          outbox: Outbox | None = None) -> builtins.list[Document]:
        """Write `items` (uids, names and metadata kept) and delete the uids in `remove`,
        as one batch; return the documents as stored. `AlreadyExists` in ``create`` mode
        for a uid or name that exists (nothing of the batch is written on SQL)."""
        ...

    async def get_many(self, collection: str, uids: Sequence[str]
                       ) -> builtins.dict[str, Document]:
        """The documents of `collection` with these uids, by uid; those it does not hold
        are left out (on SQL one read, not one per uid: the owners a `create_many` names,
        the resources of an `update_status_many`)."""
        ...
