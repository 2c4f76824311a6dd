"""``export``: a consistent snapshot of a service's resources as NDJSON (SPEC section 11).

The file: a header line ``{"fabricaExport": 1, "project": ..., "kinds": {KIND: {"plural",
"count", "resourceVersion"}}, "exportedAt": ...}``; the storage's encryption marker, when
it has one, as ``{"fabricaEncryption": DOCUMENT}`` (so values sealed with its key can be
opened where the file is imported); then each resource as stored, one per line, with its
spec history under ``specHistory`` for versioned kinds. Sensitive values are as stored:
envelopes when the service encrypts them, never opened here.
"""

from __future__ import annotations

import builtins
import json
from collections.abc import Callable, Sequence
from typing import IO, Any

from ..resource import Resource, utcnow
from ..storage import BulkStorage, Document
from ._secrets import MARKER_COLLECTION

__all__ = ["EXPORT_FORMAT", "ExportSummary", "export_resources"]

#: The ``fabricaExport`` number of the files this release writes and reads.
EXPORT_FORMAT = 1
AnyResource = Resource[Any, Any]
ExportSummary = dict[str, int]  # kind -> resources written


async def export_resources(storage: BulkStorage, kinds: Sequence[type[AnyResource]],
                           project: str, out: IO[str],
                           progress: Callable[[str, int, int], None] | None = None
                           ) -> ExportSummary:
    """Write the snapshot of `kinds` to `out`; `progress(kind, done, total)` after each
    resource. Returns how many resources of each kind were written."""
    writer = _NDJSONWriter(kinds, project, out, progress)
    await storage.export_snapshot([*writer.collections, MARKER_COLLECTION], writer)
    return writer.written


class _NDJSONWriter:
    """The `SnapshotWriter` of an export file."""

    def __init__(self, kinds: Sequence[type[AnyResource]], project: str, out: IO[str],
                 progress: Callable[[str, int, int], None] | None) -> None:
        self.kinds = {cls.resource_info.plural: cls for cls in kinds}
        self.collections = list(self.kinds)
        self.project, self.out, self.progress = project, out, progress
        self.counts: dict[str, int] = {}
        self.written: ExportSummary = {cls.resource_info.kind: 0 for cls in kinds}

    def start(self, counts: dict[str, int], revisions: dict[str, int]) -> None:
        self.counts = counts
        header = {"fabricaExport": EXPORT_FORMAT, "project": self.project, "kinds": {
            cls.resource_info.kind: {"plural": plural, "count": counts.get(plural, 0),
                                     "resourceVersion": str(revisions.get(plural, 0))}
            for plural, cls in self.kinds.items()},
            "exportedAt": utcnow().isoformat().replace("+00:00", "Z")}
        self._line(header)

    def document(self, collection: str, doc: Document, history: builtins.list[Document]
                 ) -> None:
        if collection == MARKER_COLLECTION:
            self._line({"fabricaEncryption": doc})
            return
        cls = self.kinds[collection]
        if cls.resource_info.versioning:
            doc = {**doc, "specHistory": history}
        self._line(doc)
        kind = cls.resource_info.kind
        self.written[kind] += 1
        if self.progress is not None:
            self.progress(kind, self.written[kind], self.counts.get(collection, 0))

    def _line(self, value: Any) -> None:
        self.out.write(json.dumps(value, separators=(",", ":"), ensure_ascii=False))
        self.out.write("\n")
