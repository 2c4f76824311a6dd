"""``import``: check a whole export file, then write it in batches (SPEC section 11).

Nothing is written until every line has passed (`read_export`, then `check_target`): an
error names the line and the field. Refused: a file cut short (a last line without its end,
or fewer resources than the header announces), a line from another project (a header
naming another project, or a second header: files joined), an unknown kind, a uid whose
prefix is not its kind's, a uid twice in the file (or a name twice in one kind), and any
document its kind's model does not validate (sensitive values stored as envelopes are
left out of that check: they are opened only by a server holding the key).

Then `import_resources` writes kind by kind, `batch_size` documents at a time, through the
storage's own batch writes (`BulkStorage.write_batch`): uids, names, createdAt and
generation are kept, resourceVersions are new. ``create`` refuses a uid or name that
exists, ``upsert`` overwrites it, ``replace`` also removes the resources of the file's kinds
that the file does not hold.
"""

from __future__ import annotations

import builtins
import json
from collections.abc import Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from pydantic import ValidationError

from ..resource import ApiVersionTable, Resource, is_dns1123_subdomain, sensitive_fields
from ..storage import AlreadyExists, BulkItem, BulkStorage, Document, NotFound
from ._changes import Change
from ._export import EXPORT_FORMAT
from ._fields import prepare_fields, unique_keys
from ._publisher import ChangePublisher
from ._secrets import MARKER_COLLECTION, is_envelope

__all__ = ["BadExport", "ImportMode", "ImportPlan", "check_target", "import_resources",
           "publishing", "read_export"]

AnyResource = Resource[Any, Any]
ImportMode = Literal["create", "upsert", "replace"]
_VERSION_ID_DIGITS = 12
_PAGE = 5000


class BadExport(ValueError):
    """A line of the file that cannot be imported; nothing has been written."""

    def __init__(self, line: int, field: str, message: str) -> None:
        super().__init__(f"line {line}: {field}: {message}" if field else
                         f"line {line}: {message}")
        self.line, self.field = line, field


@dataclass
class ImportPlan:
    """A checked file: its resources by kind (in file order), where each uid was read."""

    project: str
    items: dict[type[AnyResource], builtins.list[BulkItem]] = field(default_factory=dict)
    lines: dict[str, int] = field(default_factory=dict)  # uid -> line
    marker: Document | None = None
    marker_line: int = 0

    def count(self) -> int:
        return sum(len(items) for items in self.items.values())


def read_export(lines: Iterable[str], kinds: Sequence[type[AnyResource]], project: str,
                api_versions: ApiVersionTable | None = None) -> ImportPlan:
    """Check every line of an export file (`BadExport` at the first bad one)."""
    reader = _Reader(kinds, project, api_versions or ApiVersionTable(kinds))
    number = 0
    for number, text in enumerate(lines, 1):
        reader.line(number, text)
    return reader.finish(number)


class _Reader:
    def __init__(self, kinds: Sequence[type[AnyResource]], project: str,
                 api_versions: ApiVersionTable) -> None:
        self.kinds = {cls.resource_info.kind: cls for cls in kinds}
        self.api_versions = api_versions
        self.plan = ImportPlan(project)
        self.announced: dict[type[AnyResource], int] | None = None
        self.names: dict[tuple[str, str], int] = {}

    def line(self, number: int, text: str) -> None:
        if not text.strip():
            return
        try:
            value = json.loads(text)
        except ValueError:
            if not text.endswith("\n"):
                raise BadExport(number, "", "the file ends in the middle of this line "
                                "(truncated)") from None
            raise BadExport(number, "", "not a JSON document") from None
        if not isinstance(value, dict):
            raise BadExport(number, "", "not a JSON object")
        if self.announced is None:
            self._header(number, value)
        elif "fabricaExport" in value:
            raise BadExport(number, "fabricaExport", "a second export header (of project "
                            f"{value.get('project')!r}): files joined together?")
        elif "fabricaEncryption" in value:
            self._marker(number, value["fabricaEncryption"])
        else:
            self._resource(number, value)

    def _header(self, number: int, header: dict[str, Any]) -> None:
        if header.get("fabricaExport") != EXPORT_FORMAT:
            raise BadExport(number, "fabricaExport", "the file does not start with a fabrica "
                            f"export header (format {EXPORT_FORMAT})")
        if header.get("project") != self.plan.project:
            raise BadExport(number, "project", f"exported from project "
                            f"{header.get('project')!r}, this service is "
                            f"{self.plan.project!r}")
        announced = header.get("kinds")
        if not isinstance(announced, dict):
            raise BadExport(number, "kinds", "missing")
        self.announced = {}
        for kind, info in announced.items():
            cls = self._kind(number, f"kinds.{kind}", kind)
            count = info.get("count") if isinstance(info, dict) else None
            if not isinstance(count, int) or count < 0:
                raise BadExport(number, f"kinds.{kind}.count", "not a count")
            self.announced[cls] = count
            self.plan.items[cls] = []

    def _kind(self, number: int, where: str, kind: Any) -> type[AnyResource]:
        cls = self.kinds.get(kind) if isinstance(kind, str) else None
        if cls is None:
            raise BadExport(number, where, f"unknown kind {kind!r} (this service has "
                            f"{', '.join(self.kinds) or 'none'})")
        return cls

    def _marker(self, number: int, marker: Any) -> None:
        if not isinstance(marker, dict) or not isinstance(marker.get("metadata"), dict):
            raise BadExport(number, "fabricaEncryption", "not a storage document")
        self.plan.marker, self.plan.marker_line = marker, number

    def _resource(self, number: int, doc: dict[str, Any]) -> None:
        assert self.announced is not None
        cls = self._kind(number, "kind", doc.get("kind"))
        if cls not in self.announced:
            raise BadExport(number, "kind", f"{cls.resource_info.kind} is not among the "
                            "kinds the header announces")
        info = cls.resource_info
        meta = doc.get("metadata")
        if not isinstance(meta, dict):
            raise BadExport(number, "metadata", "missing")
        uid, name = meta.get("uid"), meta.get("name")
        if not isinstance(uid, str) or not info.is_uid(uid):
            raise BadExport(number, "metadata.uid", f"{uid!r} is not a uid of kind "
                            f"{info.kind} ({info.prefix}- and hex digits)")
        if not isinstance(name, str) or not is_dns1123_subdomain(name):
            raise BadExport(number, "metadata.name", f"{name!r} is not a DNS-1123 name")
        if uid in self.plan.lines:
            raise BadExport(number, "metadata.uid", f"{uid} is also on line "
                            f"{self.plan.lines[uid]}")
        if (info.kind, name) in self.names:
            raise BadExport(number, "metadata.name", f"{info.kind} {name} is also on line "
                            f"{self.names[info.kind, name]}")
        history = doc.pop("specHistory", None)
        if history is None:
            history = []
        if not isinstance(history, list) or not all(_is_snapshot(s) for s in history):
            raise BadExport(number, "specHistory", "not a list of spec versions "
                            "({\"versionId\": \"vN\", ...})")
        self._validate(number, cls, doc)
        self.plan.lines[uid] = number
        self.names[info.kind, name] = number
        self.plan.items[cls].append(BulkItem(doc, history))

    def _validate(self, number: int, cls: type[AnyResource], doc: Document) -> None:
        table = self.api_versions.of(cls)
        version = doc.get("schemaVersion", doc.get("apiVersion"))
        if version not in (*table.names, cls.resource_info.version):
            raise BadExport(number, "schemaVersion", f"{version!r} is not an API version of "
                            f"{cls.resource_info.kind} ({', '.join(table.names)})")
        try:
            cls.model_validate(table.upgrade(_without_envelopes(cls, doc)))
        except ValidationError as exc:
            error = exc.errors()[0]
            where = ".".join(str(part) for part in error["loc"])
            raise BadExport(number, where, error["msg"]) from None
        except ValueError as exc:
            raise BadExport(number, "spec", str(exc)) from None

    def finish(self, last: int) -> ImportPlan:
        if self.announced is None:
            raise BadExport(max(last, 1), "", "an empty file: no export header")
        for cls, count in self.announced.items():
            found = len(self.plan.items[cls])
            if found != count:
                raise BadExport(last + 1, "", f"the header announces {count} "
                                f"{cls.resource_info.kind} resources, the file holds {found}"
                                + (" (truncated)" if found < count else ""))
        return self.plan


def _is_snapshot(value: Any) -> bool:
    version = value.get("versionId") if isinstance(value, dict) else None
    return (isinstance(version, str) and version[:1] == "v" and version[1:].isdigit()
            and len(version) <= _VERSION_ID_DIGITS + 1)


def _without_envelopes(cls: type[AnyResource], doc: Document) -> Document:
    """`doc` for validation only: sealed sensitive values left out (each has a default)."""
    spec = doc.get("spec")
    fields = sensitive_fields(cls.resource_info.spec_type) if isinstance(spec, dict) else ()
    sealed = [name for _, name in fields if is_envelope(spec.get(name))]  # type: ignore[union-attr]
    if not sealed:
        return doc
    return {**doc, "spec": {k: v for k, v in spec.items() if k not in sealed}}  # type: ignore[union-attr]


# -- against the target ------------------------------------------------------------------


async def check_target(storage: BulkStorage, plan: ImportPlan, mode: ImportMode
                       ) -> dict[type[AnyResource], builtins.list[str]]:
    """What the target holds, checked against the plan before anything is written: in
    ``create`` mode a uid or name it holds is a `BadExport`; in ``replace`` mode, returns
    the uids to remove per kind (those the file does not hold)."""
    remove: dict[type[AnyResource], builtins.list[str]] = {}
    for cls, items in plan.items.items():
        if mode == "upsert":
            continue
        existing = await _stored(storage, cls.resource_info.plural)
        if mode == "replace":
            remove[cls] = [uid for uid in existing if uid not in plan.lines]
            continue
        names = {name: uid for uid, name in existing.items()}
        for item in items:
            meta = item.document["metadata"]
            taken = ("uid", meta["uid"]) if meta["uid"] in existing else (
                ("name", meta["name"]) if meta["name"] in names else None)
            if taken is not None:
                raise BadExport(plan.lines[meta["uid"]], f"metadata.{taken[0]}",
                                f"{cls.resource_info.kind} {taken[1]} exists in the target "
                                "storage (mode create; --mode upsert overwrites it)")
    await _check_marker(storage, plan, mode)
    return remove


async def _stored(storage: BulkStorage, collection: str) -> dict[str, str]:
    """uid -> name of every stored resource of `collection`, a page at a time."""
    found: dict[str, str] = {}
    after: str | None = None
    while True:
        page = await storage.list(collection, limit=_PAGE, after=after)
        for doc in page:
            found[doc["metadata"]["uid"]] = doc["metadata"]["name"]
        if len(page) < _PAGE:
            return found
        after = page[-1]["metadata"]["name"]


async def _check_marker(storage: BulkStorage, plan: ImportPlan, mode: ImportMode) -> None:
    if plan.marker is None:
        return
    try:
        stored = await storage.get_by_name(MARKER_COLLECTION, plan.marker["metadata"]["name"])
    except NotFound:
        return
    if stored.get("check") != plan.marker.get("check") and mode == "create":
        raise BadExport(plan.marker_line, "fabricaEncryption", "the target storage records "
                        "another encryption key: the file's sensitive values would not open "
                        "there (--mode upsert or replace takes the file's)")


# -- writing -----------------------------------------------------------------------------

Written = Callable[[type[AnyResource], builtins.list[Document], builtins.list[str]],
                   Awaitable[None]]


async def import_resources(
    storage: BulkStorage, plan: ImportPlan, mode: ImportMode, *,
    remove: dict[type[AnyResource], builtins.list[str]] | None = None,
    batch_size: int = 1000,
    progress: Callable[[str, int, int], None] | None = None,
    written: Written | None = None,
) -> dict[str, int]:
    """Write a checked plan (see the module docstring); `progress(kind, done, total)` after
    each batch, `written(kind, stored documents, removed uids)` after each batch commits.
    Returns the resources written per kind (removed ones as ``KIND removed``)."""
    counts: dict[str, int] = {}
    await _write_marker(storage, plan)
    await prepare_fields(storage, plan.items)  # imported resources go into the field index
    for cls, items in plan.items.items():
        info = cls.resource_info
        gone = (remove or {}).get(cls, [])
        for start in range(0, len(gone), batch_size):
            chunk = gone[start:start + batch_size]
            await storage.write_batch(info.plural, [], mode="upsert", remove=chunk)
            if written is not None:
                await written(cls, [], chunk)
        if gone:
            counts[f"{info.kind} removed"] = len(gone)
        counts[info.kind] = 0
        for start in range(0, len(items), batch_size):
            batch = _with_unique_keys(cls, items[start:start + batch_size])
            stored = await storage.write_batch(
                info.plural, batch, mode="create" if mode == "create" else "upsert")
            counts[info.kind] += len(stored)
            if written is not None:
                await written(cls, stored, [])
            if progress is not None:
                progress(info.kind, counts[info.kind], len(items))
    return counts


def _with_unique_keys(cls: type[AnyResource], items: Sequence[BulkItem]
                      ) -> builtins.list[BulkItem]:
    """`items` holding their unique keys, as a create of each would (SPEC section 10)."""
    rules = cls.resource_info.rules
    if not rules.unique:
        return list(items)
    return [BulkItem(item.document, item.history, unique_keys(rules, item.document))
            for item in items]


async def _write_marker(storage: BulkStorage, plan: ImportPlan) -> None:
    if plan.marker is None:
        return
    marker = {**plan.marker, "metadata": {**plan.marker["metadata"], "resourceVersion": ""}}
    try:
        await storage.create(MARKER_COLLECTION, marker)
    except AlreadyExists:
        stored = await storage.get_by_name(MARKER_COLLECTION, marker["metadata"]["name"])
        if stored.get("check") != marker.get("check"):
            await storage.delete(MARKER_COLLECTION, stored["metadata"]["uid"])
            await storage.create(MARKER_COLLECTION, marker)


def publishing(publisher: ChangePublisher, api_versions: ApiVersionTable) -> Written:
    """A `written` callback of `import_resources` announcing each imported resource as
    created (``--publish-events``); sensitive values never reach an event anyway, so the
    sealed ones are simply left out of the object."""
    async def written(cls: type[AnyResource], stored: builtins.list[Document],
                      removed: builtins.list[str]) -> None:
        table = api_versions.of(cls)
        for doc in stored:
            obj = cls.model_validate(table.upgrade(_without_envelopes(cls, doc)))
            await publisher(Change("created", obj, actor=IMPORT_ACTOR))
    return written


#: The actor of the events of imported resources.
IMPORT_ACTOR = "system:import"
