"""The CloudEvents 1.0 envelope, in its structured JSON form.

Built by hand rather than on the ``cloudevents`` SDK: the structured JSON mode is a flat JSON
object with a handful of typed attributes, and owning it keeps the runtime free of a
dependency whose API changed across major versions. Only JSON ``data`` is supported (no
``data_base64``): every event Fabrica emits carries ``application/json``.

`CloudEvent` is frozen and hashed by ``id``; its ``data`` is shared by every subscriber that
receives the event, so handlers must treat it as read-only.
"""

from __future__ import annotations

import json
import re
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from types import MappingProxyType
from typing import Any

__all__ = ["CloudEvent", "ExtensionValue", "format_time"]

ExtensionValue = str | int | bool

SPEC_VERSION = "1.0"
_CORE = frozenset(
    {"id", "source", "specversion", "type", "datacontenttype", "dataschema", "subject", "time"}
)
_NAMED_EXTENSIONS = ("resourcekind", "resourceuid", "action")
_RESERVED = _CORE | {"data", "data_base64"} | set(_NAMED_EXTENSIONS)
_EXTENSION_NAME = re.compile(r"[a-z0-9]{1,20}")
_INT32 = range(-(2**31), 2**31)


def format_time(moment: datetime) -> str:
    """RFC 3339 in UTC with a ``Z``, microsecond precision: ``2025-01-02T03:04:05.000006Z``."""
    if moment.tzinfo is None:
        raise ValueError("event times must be timezone-aware")
    return moment.astimezone(UTC).isoformat(timespec="microseconds").replace("+00:00", "Z")


def _new_id() -> str:
    return str(uuid.uuid4())


def _now() -> datetime:
    return datetime.now(UTC)


@dataclass(frozen=True, slots=True, kw_only=True)
class CloudEvent:
    """One CloudEvents 1.0 event.

    ``type`` and ``source`` are required; ``id`` defaults to a fresh uuid4 and ``time`` to now.
    ``resourcekind``, ``resourceuid`` and ``action`` are Fabrica's extension attributes;
    any other extension goes in ``extensions`` (lower-case alphanumeric names, string,
    integer or boolean values, as CloudEvents 1.0 requires).
    """

    type: str
    source: str
    id: str = field(default_factory=_new_id)
    specversion: str = SPEC_VERSION
    subject: str | None = None
    time: datetime | None = field(default_factory=_now)
    datacontenttype: str | None = "application/json"
    dataschema: str | None = None
    resourcekind: str | None = None
    resourceuid: str | None = None
    action: str | None = None
    extensions: Mapping[str, ExtensionValue] = field(default_factory=dict)
    data: Any = None

    def __post_init__(self) -> None:
        if self.specversion != SPEC_VERSION:
            raise ValueError(f"unsupported CloudEvents specversion {self.specversion!r}")
        for name in ("id", "source", "type"):
            value = getattr(self, name)
            if not isinstance(value, str) or not value:
                raise ValueError(f"CloudEvent {name} must be a non-empty string")
        if self.time is not None and self.time.tzinfo is None:
            raise ValueError("CloudEvent time must be timezone-aware")
        for name, value in self.extensions.items():
            _check_extension(name, value)
        object.__setattr__(self, "extensions", MappingProxyType(dict(self.extensions)))

    def __hash__(self) -> int:
        return hash(self.id)

    def to_dict(self) -> dict[str, Any]:
        """The structured-mode JSON object; attributes that are unset are left out."""
        out: dict[str, Any] = {"specversion": self.specversion, "id": self.id}
        out["source"] = self.source
        out["type"] = self.type
        optional = {
            "subject": self.subject,
            "time": None if self.time is None else format_time(self.time),
            "datacontenttype": self.datacontenttype,
            "dataschema": self.dataschema,
            "resourcekind": self.resourcekind,
            "resourceuid": self.resourceuid,
            "action": self.action,
        }
        out.update((k, v) for k, v in optional.items() if v is not None)
        out.update(self.extensions)
        if self.data is not None:
            out["data"] = self.data
        return out

    def to_json(self) -> str:
        """Compact JSON (no spaces, no newlines), ready for a NATS message or an SSE line."""
        return json.dumps(self.to_dict(), separators=(",", ":"), ensure_ascii=False)

    @classmethod
    def from_dict(cls, obj: Mapping[str, Any]) -> CloudEvent:
        """Parse a structured-mode JSON object; ValueError names what is wrong."""
        if obj.get("specversion") != SPEC_VERSION:
            raise ValueError(f"unsupported CloudEvents specversion {obj.get('specversion')!r}")
        if "data_base64" in obj:
            raise ValueError("CloudEvents with data_base64 are not supported")
        extensions = {k: v for k, v in obj.items() if k not in _RESERVED}
        return cls(
            id=_required(obj, "id"),
            source=_required(obj, "source"),
            type=_required(obj, "type"),
            subject=_optional(obj, "subject"),
            time=_parse_time(obj.get("time")),
            datacontenttype=_optional(obj, "datacontenttype"),
            dataschema=_optional(obj, "dataschema"),
            resourcekind=_optional(obj, "resourcekind"),
            resourceuid=_optional(obj, "resourceuid"),
            action=_optional(obj, "action"),
            extensions=extensions,
            data=obj.get("data"),
        )

    @classmethod
    def from_json(cls, text: str | bytes) -> CloudEvent:
        try:
            obj = json.loads(text)
        except ValueError as exc:
            raise ValueError(f"CloudEvent is not valid JSON: {exc}") from None
        if not isinstance(obj, dict):
            raise ValueError("a structured CloudEvent must be a JSON object")
        return cls.from_dict(obj)


def _required(obj: Mapping[str, Any], name: str) -> str:
    value = obj.get(name)
    if not isinstance(value, str) or not value:
        raise ValueError(f"CloudEvent attribute {name!r} missing or not a non-empty string")
    return value


def _optional(obj: Mapping[str, Any], name: str) -> str | None:
    value = obj.get(name)
    if value is not None and not isinstance(value, str):
        raise ValueError(f"CloudEvent attribute {name!r} must be a string")
    return value


def _parse_time(value: Any) -> datetime | None:
    if value is None:
        return None
    if not isinstance(value, str):
        raise ValueError("CloudEvent attribute 'time' must be an RFC 3339 string")
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        raise ValueError(f"CloudEvent time {value!r} is not RFC 3339") from None
    if moment.tzinfo is None:
        raise ValueError(f"CloudEvent time {value!r} has no UTC offset")
    return moment


def _check_extension(name: str, value: Any) -> None:
    if name in _RESERVED or not _EXTENSION_NAME.fullmatch(name):
        raise ValueError(
            f"invalid CloudEvent extension name {name!r}: "
            "use 1-20 lower-case letters or digits, not a core attribute"
        )
    if isinstance(value, bool | str):
        return
    if not isinstance(value, int) or value not in _INT32:
        raise ValueError(f"CloudEvent extension {name!r} must be a string, boolean or int32")
