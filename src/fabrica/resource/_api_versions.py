"""Which API versions each kind serves, and the conversions between them and storage.

`ApiVersions` is one kind's table: its storage version, the version of requests that name
none, and each `ServedVersion`. Everything converts through the storage version:

- reading in version V: ``*_from_storage`` on the stored spec and status;
- writing in version V: ``*_to_storage`` on what the client sent, then **preserve**: a
  field the version cannot express (it does not survive storage → V → storage unchanged)
  keeps its stored value, unless the write changed what V shows of it. So a v1 client that
  replaces or patches a resource never erases the v2-only fields it cannot see;
- documents stored while the kind had another storage version are upgraded on read, so
  moving the storage version on needs no migration of the data already stored.

`ApiVersionTable` holds the tables of every kind of a service and refuses a version served
twice, a `ServedVersion` of a kind the service does not serve, or a default version that is
not served.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from pydantic import BaseModel

from ._resource import Resource
from ._served import ServedVersion, VersionInfo, version_sort_key

__all__ = ["ApiVersionTable", "ApiVersions", "ConversionError"]

AnyResource = Resource[Any, Any]
Document = dict[str, Any]
_MISSING = object()


class ConversionError(ValueError):
    """What a client sent in one version has no valid storage form (a 400, not a 500)."""

    def __init__(self, message: str, errors: Any = None) -> None:
        super().__init__(message)
        self.errors = errors  # the pydantic ValidationError, when that was the cause


class ApiVersions:
    """The API versions of one kind (its storage version first, then by priority)."""

    def __init__(self, kind: type[AnyResource], served: Iterable[type[ServedVersion[Any, Any]]]
                 = ()) -> None:
        info = kind.resource_info
        self.kind = kind
        self.storage = info.version
        self._served: dict[str, VersionInfo] = {}
        for cls in served:
            self._add(cls.version_info)
        self.default = info.default_version or info.version
        if self.default not in self.names:
            raise ValueError(f"{info.kind}: default_version {self.default!r} is not served; "
                             f"served: {', '.join(self.names)}")

    def _add(self, version: VersionInfo) -> None:
        name = version.served_class.__name__
        if version.kind is not self.kind:
            raise ValueError(f"{name} serves {version.storage.kind}, not "
                             f"{self.kind.resource_info.kind}")
        other = self._served.get(version.version)
        if other is not None and other.served_class is not version.served_class:
            raise ValueError(f"{self.kind.resource_info.kind} {version.version} is served twice: "
                             f"by {other.served_class.__name__} and {name}; keep one")
        self._served[version.version] = version

    @property
    def names(self) -> list[str]:
        """Every served version: storage first, then Kubernetes' priority order."""
        return [self.storage, *sorted(self._served, key=version_sort_key)]

    @property
    def multiple(self) -> bool:
        return bool(self._served)

    def is_served(self, version: str) -> bool:
        return version == self.storage or version in self._served

    def info(self, version: str) -> VersionInfo | None:
        """The `ServedVersion` declaration of `version`; None for the storage version."""
        return self._served.get(version)

    def deprecated(self, version: str) -> bool:
        served = self._served.get(version)
        return served is not None and served.deprecated

    def model(self, version: str) -> type[BaseModel]:
        """The class a resource in `version` validates as: the kind or its ServedVersion."""
        served = self._served.get(version)
        return self.kind if served is None else served.served_class

    def spec_type(self, version: str) -> type[BaseModel]:
        served = self._served.get(version)
        return self.kind.resource_info.spec_type if served is None else served.spec_type

    def status_type(self, version: str) -> type[BaseModel]:
        served = self._served.get(version)
        return self.kind.resource_info.status_type if served is None else served.status_type

    # -- storage → version -------------------------------------------------------------

    def to_version(self, obj: AnyResource, version: str) -> BaseModel:
        """`obj` (storage shape) as `version` shows it."""
        served = self._served.get(version)
        if served is None:
            return obj
        return served.served_class(
            metadata=obj.metadata,
            spec=self.from_storage(version, "spec", obj.spec),
            status=self.from_storage(version, "status", obj.status),
        )

    def from_storage(self, version: str, half: str, value: BaseModel) -> BaseModel:
        """A storage spec or status (`half`) in `version`'s shape."""
        served = self._served.get(version)
        if served is None:
            return value
        target = served.spec_type if half == "spec" else served.status_type
        return _convert(served, f"{half}_from_storage", value, target)

    # -- version → storage -------------------------------------------------------------

    def to_storage(self, version: str, half: str, value: BaseModel,
                   stored: BaseModel | None = None) -> BaseModel:
        """A spec or status written in `version`, in storage shape.

        With `stored` (the current storage value), fields `version` cannot express keep
        their stored values wherever the write left them as `version` showed them.
        """
        served = self._served.get(version)
        if served is None:
            return value
        storage_info = self.kind.resource_info
        target = storage_info.spec_type if half == "spec" else storage_info.status_type
        try:
            converted = _convert(served, f"{half}_to_storage", value, target)
        except ValueError as exc:  # pydantic's ValidationError is one too
            raise ConversionError(f"the {half} cannot be converted from {version} to "
                                  f"{self.storage}: {exc}", exc) from None
        if stored is None:
            return converted
        round_trip = self.to_storage(version, half, self.from_storage(version, half, stored))
        kept = _preserve(_dump(stored), _dump(round_trip), _dump(converted))
        try:
            return target.model_validate(kept)
        except ValueError as exc:
            raise ConversionError(f"the {half} written in {version} does not combine with the "
                                  f"fields {version} cannot express: {exc}", exc) from None

    def upgrade(self, doc: Document) -> Document:
        """A stored document as the storage version shapes it: one stored while the kind had
        another storage version is converted from that version when it is still served."""
        version = doc.get("schemaVersion")
        if version is None or version == self.storage:
            return doc
        served = self._served.get(version)
        if served is None:
            return doc  # not served any more: read as is, for what still validates
        spec = served.spec_type.model_validate(doc.get("spec", {}))
        status = served.status_type.model_validate(doc.get("status", {}))
        return {
            **doc,
            "apiVersion": self.storage,
            "schemaVersion": self.storage,
            "spec": _dump(self.to_storage(version, "spec", spec)),
            "status": _dump(self.to_storage(version, "status", status)),
        }


class ApiVersionTable:
    """The `ApiVersions` of every kind a service (or client) knows."""

    def __init__(self, kinds: Iterable[type[AnyResource]],
                 versions: Iterable[type[ServedVersion[Any, Any]]] = ()) -> None:
        kinds = list(kinds)
        by_kind: dict[type[AnyResource], list[type[ServedVersion[Any, Any]]]] = {
            cls: [] for cls in kinds}
        for served in versions:
            kind = served.version_info.kind
            if kind not in by_kind:
                raise ValueError(f"{served.__name__} serves {kind.resource_info.kind}, which is "
                                 "not among the kinds given")
            by_kind[kind].append(served)
        self._tables: Mapping[type[AnyResource], ApiVersions] = {
            cls: ApiVersions(cls, served) for cls, served in by_kind.items()}

    def of(self, kind: type[AnyResource]) -> ApiVersions:
        table = self._tables.get(kind)
        return table if table is not None else ApiVersions(kind)


def _convert(served: VersionInfo, method: str, value: BaseModel, target: type[BaseModel]
             ) -> BaseModel:
    function = getattr(served.served_class, method, None)
    result = value if function is None else function(value)
    if isinstance(result, target):
        return result
    if isinstance(result, BaseModel):  # a look-alike class: go through its JSON
        result = _dump(result)
    return target.model_validate(result)


def _dump(model: BaseModel) -> Document:
    return model.model_dump(mode="json", by_alias=True)


def _preserve(stored: Document, round_trip: Document, written: Document) -> Document:
    """`written`, with each stored field that did not survive the round trip put back,
    unless the write changed it (then the write wins); nested objects field by field."""
    result = dict(written)
    for key, value in stored.items():
        seen = round_trip.get(key, _MISSING)
        if seen == value:
            continue  # the version expresses it: the write decides
        new = written.get(key, _MISSING)
        if isinstance(value, dict) and isinstance(seen, dict) and isinstance(new, dict):
            result[key] = _preserve(value, seen, new)
        elif new == seen:
            result[key] = value
    return result
