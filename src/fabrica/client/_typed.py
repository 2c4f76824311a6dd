"""What the typed clients share: turning resource objects into request bodies and back.

`Client` and `AsyncClient` differ only in ``await``; everything that decides *what* to send
for a typed call (the envelope of a create or update, which status an object carries, how
the flexible ``update_status(obj)`` / ``update_status(Device, id, status)`` forms resolve)
lives here once.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, cast

from pydantic import BaseModel
from typing_extensions import TypeVar

from ..resource import Resource, ServedVersion
from ._calls import to_json
from ._kinds import Kinds

__all__ = ["R", "Body", "create_body", "item_id", "resolve", "split_target", "update_body"]

# A resource class; with a kind given by name the type checker falls back to the default.
# A served version's class (``DeviceV1``) works everywhere a kind does.
R = TypeVar("R", bound=BaseModel, default=Resource[Any, Any])
Body = BaseModel | Mapping[str, Any]


def resolve(kinds: Kinds, kind: type[R] | str) -> type[R]:
    return cast("type[R]", kinds.resolve(kind))


def item_id(obj: Any) -> str:
    """The uid when the object (a resource, in any API version) has one (it is stable),
    else the name."""
    return cast(str, obj.metadata.uid or obj.metadata.name)


def create_body(
    name: str,
    spec: Body,
    labels: Mapping[str, str] | None,
    annotations: Mapping[str, str] | None,
) -> dict[str, Any]:
    metadata: dict[str, Any] = {"name": name}
    if labels is not None:
        metadata["labels"] = dict(labels)
    if annotations is not None:
        metadata["annotations"] = dict(annotations)
    return {"metadata": metadata, "spec": to_json(spec)}


def update_body(obj: Any) -> dict[str, Any]:
    """The envelope of a PUT; its ``resourceVersion`` makes the server refuse stale writes."""
    meta = obj.metadata
    metadata: dict[str, Any] = {
        "name": meta.name,
        "labels": dict(meta.labels),
        "annotations": dict(meta.annotations),
    }
    if meta.resource_version:
        metadata["resourceVersion"] = meta.resource_version
    # schemaVersion says which API version the spec is in, whatever the client's default
    return {"apiVersion": obj.api_version, "schemaVersion": obj.schema_version,
            "kind": obj.kind, "metadata": metadata, "spec": to_json(obj.spec)}


def split_target(
    target: Any, args: tuple[Any, ...], what: str, *, own_status: bool = False
) -> tuple[Any, str, Any]:
    """``(obj[, value])``, ``((kind, id), value)`` or ``(kind, id, value)`` → kind, id, value.

    With `own_status`, an object given without a value stands for its own ``status``.
    """
    if isinstance(target, Resource | ServedVersion):
        kind: Any = type(target)
        id, rest = item_id(target), args
        default: Any = target.status if own_status else None
    elif isinstance(target, tuple) and len(target) == 2:
        (kind, id), rest, default = target, args, None
    elif args:
        kind, id, rest, default = target, args[0], args[1:], None
    else:
        raise TypeError(f"give a resource object, or a kind and an id, and the {what}")
    if len(rest) > 1:
        raise TypeError(f"too many arguments; expected one {what}")
    value = rest[0] if rest else default
    if value is None:
        raise TypeError(f"missing the {what}")
    return kind, id, value
