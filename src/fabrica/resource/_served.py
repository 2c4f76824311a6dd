"""`ServedVersion[Spec, Status]`: one more API version of a kind, with its conversions.

A kind has one *storage* version (``Resource[...]``'s ``version=``, default ``v1``): the shape
its documents are stored in. It may serve other versions beside it, each declared once::

    class DeviceV1(ServedVersion[DeviceV1Spec, DeviceStatus], of=Device, version="v1",
                   deprecated=True):
        @staticmethod
        def spec_to_storage(spec: DeviceV1Spec) -> DeviceSpec: ...
        @staticmethod
        def spec_from_storage(spec: DeviceSpec) -> DeviceV1Spec: ...

Conversions always go through the storage version (a hub, as Kubernetes converts), so n
versions need 2n functions, not n². Where a version's Spec (or Status) class *is* the
storage version's, its two conversions default to the identity; any other pair must be
written, and a missing one is an error when the class is defined, not at the first request.

These are *API versions* (the shapes a client may read and write), not the spec history of
``versioning=True`` kinds (``/PLURAL/{id}/versions``); the two never meet.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any, ClassVar, Generic, TypeGuard, TypeVar

from pydantic import BaseModel, Field

from ._resource import Metadata, Resource, ResourceInfo, _Envelope

__all__ = [
    "CONVERSIONS",
    "ServedVersion",
    "VersionInfo",
    "is_valid_version",
    "version_sort_key",
]

SpecT = TypeVar("SpecT", bound=BaseModel)
StatusT = TypeVar("StatusT", bound=BaseModel)

_VERSION = re.compile(r"^v([1-9][0-9]*)(?:(alpha|beta)([1-9][0-9]*))?$")
# (name, which half of the resource it converts)
CONVERSIONS = (
    ("spec_to_storage", "spec"),
    ("spec_from_storage", "spec"),
    ("status_to_storage", "status"),
    ("status_from_storage", "status"),
)


def is_valid_version(version: str) -> bool:
    """``v1``, ``v2beta1``, ``v3alpha2``: Kubernetes' API version names."""
    return bool(_VERSION.match(version))


def version_sort_key(version: str) -> tuple[int, int, int]:
    """Kubernetes' priority: GA before beta before alpha, higher numbers first."""
    match = _VERSION.match(version)
    if match is None:
        return (3, 0, 0)
    major, stage, minor = match.groups()
    rank = {None: 0, "beta": 1, "alpha": 2}[stage]
    return (rank, -int(major), -int(minor or 0))


@dataclass(frozen=True)
class VersionInfo:
    """What a `ServedVersion` class declares: which kind, which version, how to convert."""

    kind: type[Resource[Any, Any]]
    version: str
    deprecated: bool
    spec_type: type[BaseModel]
    status_type: type[BaseModel]
    served_class: type[ServedVersion[Any, Any]]

    @property
    def storage(self) -> ResourceInfo:
        return self.kind.resource_info


class ServedVersion(_Envelope, Generic[SpecT, StatusT]):
    """A resource as one non-storage API version shows it: the same envelope as `Resource`,
    with this version's Spec and Status. Subclass it with ``of=``, ``version=`` and
    optionally ``deprecated=True``, and write the static conversion methods."""

    api_version: str = Field(default="", alias="apiVersion")
    kind: str = ""
    schema_version: str = Field(default="", alias="schemaVersion")
    metadata: Metadata
    spec: SpecT
    status: StatusT

    version_info: ClassVar[VersionInfo]

    def __init_subclass__(cls, of: Any = None, version: Any = None, deprecated: bool = False,
                          **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)  # the keywords come again below, once built

    @classmethod
    def __pydantic_init_subclass__(
        cls, of: Any = None, version: Any = None, deprecated: bool = False, **kwargs: Any
    ) -> None:
        super().__pydantic_init_subclass__(**kwargs)
        if cls.__pydantic_generic_metadata__["origin"] is not None:
            return  # ServedVersion[Spec, Status] itself
        cls.version_info = _version_info(cls, of, version, deprecated)

    @classmethod
    def _identity(cls) -> tuple[str, str] | None:
        if not hasattr(cls, "version_info"):
            return None
        return cls.version_info.storage.kind, cls.version_info.version


def _version_info(cls: type[ServedVersion[Any, Any]], of: Any, version: Any,
                  deprecated: bool) -> VersionInfo:
    name = cls.__name__
    if not (isinstance(of, type) and issubclass(of, Resource) and hasattr(of, "resource_info")):
        raise TypeError(f"{name}: of= must name the kind it serves, e.g. of=Device")
    storage = of.resource_info
    if not isinstance(version, str) or not is_valid_version(version):
        raise TypeError(f"{name}: version={version!r} is not an API version like v1, v2beta1 "
                        "or v3alpha2")
    if version == storage.version:
        raise TypeError(f"{name}: {version} is already {storage.kind}'s storage version; a "
                        f"ServedVersion serves another one (move {storage.kind} on first: "
                        f'version="..." in its class keywords)')
    spec_type = cls.model_fields["spec"].annotation
    status_type = cls.model_fields["status"].annotation
    if not (_is_model(spec_type) and _is_model(status_type)):
        raise TypeError(f"{name} must subclass ServedVersion[SpecModel, StatusModel]")
    try:
        status_type()
    except Exception as exc:
        raise TypeError(f"{name}: every field of {status_type.__name__} needs a default, "
                        "because a new resource starts with an empty status") from exc
    own = {"spec": spec_type is not storage.spec_type,
           "status": status_type is not storage.status_type}
    missing = [method for method, half in CONVERSIONS if own[half] and not _defines(cls, method)]
    if missing:
        raise TypeError(
            f"{name} (API version {version} of {storage.kind}) is missing the conversion "
            f"{' and '.join(missing)}: its own Spec/Status classes differ from the storage "
            f"version's ({storage.version}), so define each as a @staticmethod"
        )
    return VersionInfo(kind=of, version=version, deprecated=bool(deprecated),
                       spec_type=spec_type, status_type=status_type, served_class=cls)


def _defines(cls: type, method: str) -> bool:
    return any(method in vars(klass) for klass in cls.__mro__
               if klass is not ServedVersion and issubclass(klass, ServedVersion))


def _is_model(tp: object) -> TypeGuard[type[BaseModel]]:
    return isinstance(tp, type) and issubclass(tp, BaseModel)
