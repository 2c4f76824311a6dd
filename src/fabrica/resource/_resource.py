"""`Resource[Spec, Status]`: the Kubernetes-style envelope every kind shares.

A kind is declared once, as a class::

    class Device(Resource[DeviceSpec, DeviceStatus], prefix="dev"):
        '''A network device.'''

The class keywords become `Device.resource_info` (kind, UID prefix, URL plural, spec
history, API version), which storage, server and code generation read instead of
re-deriving names themselves. ``version=`` names the *storage* API version (default ``v1``):
the shape documents are stored in and, unless ``default_version=`` says otherwise, the one
a request that names no version gets; other versions are served by `ServedVersion` classes.
"""

from __future__ import annotations

import dataclasses
import secrets
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any, ClassVar, Generic, TypeGuard, TypeVar

from pydantic import BaseModel, ConfigDict, Field, model_validator

from ._model import Model
from ._naming import default_prefix, is_uid, is_valid_plural, is_valid_prefix, pluralize
from ._rules import KindRules, kind_rules

__all__ = [
    "API_VERSION",
    "SCHEMA_VERSION",
    "Metadata",
    "OwnerReference",
    "Resource",
    "ResourceInfo",
    "new_uid",
]

API_VERSION = "v1"
SCHEMA_VERSION = "v1"

SpecT = TypeVar("SpecT", bound=BaseModel)
StatusT = TypeVar("StatusT", bound=BaseModel)


class OwnerReference(Model):
    """Points a dependent at its owner; deleting the owner deletes the dependent."""

    api_version: str = API_VERSION
    kind: str
    name: str
    uid: str
    controller: bool = False
    block_owner_deletion: bool = False


def _empty(value: object) -> bool:
    return not value


class Metadata(Model):
    name: str
    uid: str = ""
    labels: dict[str, str] = {}
    annotations: dict[str, str] = {}
    created_at: datetime | None = None
    updated_at: datetime | None = None
    resource_version: str = ""
    generation: int = 0
    # Kubernetes leaves these out until they are used; so does the wire format here.
    owner_references: list[OwnerReference] = Field(default=[], exclude_if=_empty)
    finalizers: list[str] = Field(default=[], exclude_if=_empty)
    deletion_timestamp: datetime | None = Field(default=None, exclude_if=_empty)

    def is_owned_by(self, uid: str) -> bool:
        return any(ref.uid == uid for ref in self.owner_references)


@dataclass(frozen=True)
class ResourceInfo:
    """What the rest of fabrica needs to know about a kind, fixed at class definition."""

    kind: str
    prefix: str
    plural: str
    versioning: bool
    spec_type: type[BaseModel]
    status_type: type[BaseModel]
    description: str
    version: str = API_VERSION  # the storage API version
    default_version: str = ""  # the version of requests that name none; "" = `version`
    rules: KindRules = KindRules()  # unique, immutable, sensitive, indexed fields; verbs...

    @property
    def singular(self) -> str:
        """The lower-cased kind: file names, CLI nouns, event types."""
        return self.kind.lower()

    def is_uid(self, value: str) -> bool:
        return is_uid(value, self.prefix)


def new_uid(prefix: str) -> str:
    """`PREFIX-` and 8 random hex digits; storage refuses duplicates, callers retry."""
    return f"{prefix}-{secrets.token_hex(4)}"


class _Envelope(BaseModel):
    """What `Resource` and `ServedVersion` share: the aliases, the defaults of a new object's
    kind and API version (``_identity``, once the class is declared), ``uid`` and ``name``.
    Fields stay in the subclasses, so each keeps its field (and JSON key) order."""

    model_config = ConfigDict(
        validate_by_name=True, validate_by_alias=True, serialize_by_alias=True
    )

    if TYPE_CHECKING:
        metadata: Metadata

    @classmethod
    def _identity(cls) -> tuple[str, str] | None:
        """The kind and API version of this class's objects, or None (not declared yet)."""
        return None

    @model_validator(mode="before")
    @classmethod
    def _defaults(cls, data: Any) -> Any:
        if isinstance(data, dict) and (identity := cls._identity()) is not None:
            kind, version = identity
            data = _with_defaults(data, kind=kind, apiVersion=version, schemaVersion=version)
        return data

    @property
    def uid(self) -> str:
        return self.metadata.uid

    @property
    def name(self) -> str:
        return self.metadata.name


class Resource(_Envelope, Generic[SpecT, StatusT]):
    api_version: str = Field(default=API_VERSION, alias="apiVersion")
    kind: str = ""
    schema_version: str = Field(default=SCHEMA_VERSION, alias="schemaVersion")
    metadata: Metadata
    spec: SpecT
    status: StatusT

    resource_info: ClassVar[ResourceInfo]

    def __init_subclass__(
        cls,
        prefix: str | None = None,
        plural: str | None = None,
        versioning: bool = False,
        version: str = API_VERSION,
        default_version: str = "",
        unique: Sequence[str | Sequence[str]] = (),
        verbs: Sequence[str] | None = None,
        exposure: str = "protected",
        max_body_size: int | str | None = None,
        **kwargs: Any,
    ) -> None:
        # Swallow our class keywords so object.__init_subclass__ does not reject them;
        # pydantic hands them again to __pydantic_init_subclass__ once the class is built.
        super().__init_subclass__(**kwargs)

    @classmethod
    def __pydantic_init_subclass__(
        cls,
        prefix: str | None = None,
        plural: str | None = None,
        versioning: bool = False,
        version: str = API_VERSION,
        default_version: str = "",
        unique: Sequence[str | Sequence[str]] = (),
        verbs: Sequence[str] | None = None,
        exposure: str = "protected",
        max_body_size: int | str | None = None,
        **kwargs: Any,
    ) -> None:
        super().__pydantic_init_subclass__(**kwargs)
        if cls.__pydantic_generic_metadata__["origin"] is not None:
            return  # Resource[Spec, Status] itself, not a kind yet
        spec_type = cls.model_fields["spec"].annotation
        status_type = cls.model_fields["status"].annotation
        if not (_is_model(spec_type) and _is_model(status_type)):
            raise TypeError(f"{cls.__name__} must subclass Resource[SpecModel, StatusModel]")
        info = _resource_info(cls, spec_type, status_type, prefix, plural, versioning)
        rules = kind_rules(info.kind, spec_type, status_type, unique=unique, verbs=verbs,
                           exposure=exposure, max_body_size=max_body_size)
        cls.resource_info = dataclasses.replace(_with_versions(info, version, default_version),
                                                rules=rules)

    @classmethod
    def _identity(cls) -> tuple[str, str] | None:
        """A new object is in storage shape."""
        if not hasattr(cls, "resource_info"):
            return None
        return cls.resource_info.kind, cls.resource_info.version

    def owner_reference(self, controller: bool = True) -> OwnerReference:
        """A reference to this resource, for a dependent's ``metadata.ownerReferences``."""
        return OwnerReference(kind=self.resource_info.kind, name=self.name, uid=self.uid,
                              controller=controller, block_owner_deletion=controller)


_BY_NAME = {"apiVersion": "api_version", "schemaVersion": "schema_version", "kind": "kind"}


def _with_defaults(data: dict[str, Any], **defaults: str) -> dict[str, Any]:
    """`data` with each default set where neither its JSON nor its Python name has a value."""
    missing = {key: value for key, value in defaults.items()
               if not data.get(key) and not data.get(_BY_NAME[key])}
    return {**data, **missing} if missing else data


def _with_versions(info: ResourceInfo, version: str, default_version: str) -> ResourceInfo:
    from ._served import is_valid_version  # _served builds on this module

    for keyword, value in (("version", version), ("default_version", default_version)):
        if value and not (isinstance(value, str) and is_valid_version(value)):
            raise TypeError(f"{info.kind}: {keyword}={value!r} is not an API version like v1, "
                            "v2beta1 or v3alpha2")
    return dataclasses.replace(info, version=version, default_version=default_version)


def _is_model(tp: object) -> TypeGuard[type[BaseModel]]:
    return isinstance(tp, type) and issubclass(tp, BaseModel)


def _resource_info(
    cls: type,
    spec_type: type[BaseModel],
    status_type: type[BaseModel],
    prefix: str | None,
    plural: str | None,
    versioning: bool,
) -> ResourceInfo:
    kind = cls.__name__
    prefix = prefix or default_prefix(kind)
    plural = plural or pluralize(kind.lower())
    if not is_valid_prefix(prefix):
        raise TypeError(f"{kind}: prefix {prefix!r} must be lower-case letters and digits")
    if not is_valid_plural(plural):
        raise TypeError(f"{kind}: plural {plural!r} must be a lower-case URL segment")
    try:
        status_type()
    except Exception as exc:
        raise TypeError(
            f"{kind}: every field of {status_type.__name__} needs a default, "
            "because a new resource starts with an empty status"
        ) from exc
    if versioning and "version" not in status_type.model_fields:
        raise TypeError(
            f"{kind}: a versioned kind records its spec version in status.version; "
            f'add `version: str = ""` to {status_type.__name__}'
        )
    return ResourceInfo(
        kind=kind,
        prefix=prefix,
        plural=plural,
        versioning=versioning,
        spec_type=spec_type,
        status_type=status_type,
        description=(cls.__doc__ or "").strip(),
    )
