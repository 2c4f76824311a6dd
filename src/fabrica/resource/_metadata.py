"""The rules of a resource's metadata, owned by the model so that every write path has them.

Labels, annotations, finalizers and owner references are checked whoever writes them: the
HTTP layer runs these checks as it reads a body (where the values are still raw JSON, so
their types are checked too), and `ResourceStore` runs `check_metadata` on every create and
spec/metadata write, so a reconciler that writes a bad annotation gets the same
`InvalidMetadata` (and, over HTTP, the same 400 body) as a client.

- label keys and annotation keys (and finalizers) are qualified names: an optional
  DNS-subdomain prefix and ``/``, then a name of at most 63 characters;
- label values are empty or a name; annotation values are any string, but keys and values
  together hold at most 256 KiB (`MAX_ANNOTATIONS_BYTES`, as Kubernetes);
- owner references have the `OwnerReference` shape, strictly typed. Whether their kind is
  served and their uid exists is a fact of the store, checked there (`OwnerReferenceError`).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

from pydantic import ValidationError

from ._labels import label_key_error, label_value_error
from ._resource import Metadata, OwnerReference

__all__ = [
    "MAX_ANNOTATIONS_BYTES",
    "InvalidMetadata",
    "check_annotations",
    "check_finalizers",
    "check_labels",
    "check_metadata",
    "check_owner_references",
]

#: Annotation keys and values together, counted in characters as Kubernetes counts bytes.
MAX_ANNOTATIONS_BYTES = 256 * 1024


class InvalidMetadata(ValueError):
    """Metadata that breaks a rule: `message` says which field (``invalid
    metadata.annotations``), `causes` each problem as (JSON path, message)."""

    def __init__(self, message: str, causes: list[tuple[str, str]]) -> None:
        super().__init__(message)
        self.message = message
        self.causes = causes


def check_labels(value: Any, path: str = "metadata.labels") -> dict[str, str] | None:
    """`value` (None, or a map of label keys to label values), or `InvalidMetadata`."""
    labels = _string_map(value, path)
    if labels is None:
        return None
    causes = []
    for key, label in labels.items():
        if (problem := label_key_error(key)) is not None:
            causes.append((f"{path}.{key}", f"invalid key: {problem}"))
        elif (problem := label_value_error(label)) is not None:
            causes.append((f"{path}.{key}", f"invalid value: {problem}"))
    if causes:
        raise InvalidMetadata(f"invalid {path}", causes)
    return labels


def check_annotations(value: Any, path: str = "metadata.annotations") -> dict[str, str] | None:
    """`value` (None, or a map of qualified names to any strings, at most 256 KiB in all),
    or `InvalidMetadata`."""
    annotations = _string_map(value, path)
    if annotations is None:
        return None
    causes = [(f"{path}.{key}", f"invalid key: {problem}")
              for key in annotations if (problem := label_key_error(key)) is not None]
    if sum(len(k) + len(v) for k, v in annotations.items()) > MAX_ANNOTATIONS_BYTES:
        causes.append((path, "may hold at most 256 KiB"))
    if causes:
        raise InvalidMetadata(f"invalid {path}", causes)
    return annotations


def check_finalizers(value: Any, path: str = "metadata.finalizers") -> list[str] | None:
    """`value` (None, or a list of qualified names) without repeats, or `InvalidMetadata`."""
    if value is None:
        return None
    if not isinstance(value, list) or not all(
        isinstance(v, str) and label_key_error(v) is None for v in value
    ):
        raise InvalidMetadata(f"invalid {path}", [
            (path, "must be a list of qualified names such as example.com/cleanup")])
    return list(dict.fromkeys(value))


def check_owner_references(value: Any, path: str = "metadata.ownerReferences"
                           ) -> list[OwnerReference] | None:
    """`value` (None, or a list of owner references: JSON objects or `OwnerReference`s) as
    `OwnerReference`s, or `InvalidMetadata` naming the first bad one's fields."""
    if value is None:
        return None
    if not isinstance(value, list):
        raise InvalidMetadata(f"invalid {path}", [(path, "must be a list")])
    refs = []
    for index, item in enumerate(value):
        try:
            refs.append(_owner_reference(item))
        except ValidationError as exc:
            raise InvalidMetadata(f"invalid {path}",
                                  _causes(exc, f"{path}.{index}")) from None
        except (TypeError, ValueError):  # not JSON at all: only Python code can send that
            raise InvalidMetadata(f"invalid {path}", [
                (f"{path}.{index}", "must be an owner reference")]) from None
    return refs


def check_metadata(metadata: Metadata, before: Metadata | None = None) -> None:
    """Raise `InvalidMetadata` if a field of `metadata` that a write sets breaks its rule.

    With `before` (the stored metadata of an update), a field equal to what is stored is
    not checked again: a resource stored before a rule existed must stay writable (to
    remove its finalizer, say), and a status or spec write pays nothing for its metadata."""
    for name, path, check in _CHECKS:
        value = getattr(metadata, name)
        if before is not None and value == getattr(before, name):
            continue
        if check(value, path) is None:  # None is "not given" in a body; here it is no value
            raise InvalidMetadata(f"invalid {path}", [(path, "must not be null")])


_CHECKS: tuple[tuple[str, str, Callable[[Any, str], object]], ...] = (
    ("labels", "metadata.labels", check_labels),
    ("annotations", "metadata.annotations", check_annotations),
    ("finalizers", "metadata.finalizers", check_finalizers),
    ("owner_references", "metadata.ownerReferences", check_owner_references),
)


def _string_map(value: Any, path: str) -> dict[str, str] | None:
    if value is None:
        return None
    if not isinstance(value, dict) or not all(
        isinstance(k, str) and isinstance(v, str) for k, v in value.items()
    ):
        raise InvalidMetadata(f"invalid {path}", [(path, "must map strings to strings")])
    return value


#: The plain type of each `OwnerReference` field (str or bool).
_REF_TYPES = {name: info.annotation for name, info in OwnerReference.model_fields.items()}


def _owner_reference(item: Any) -> OwnerReference:
    if isinstance(item, OwnerReference):
        # Built in Python (a reconciler's): its fields may have been set without
        # validation. Well typed (the store's every write): as it is, cheaply; else
        # validated again for pydantic's messages (not serialised: that only warns).
        if all(type(getattr(item, name)) is tp for name, tp in _REF_TYPES.items()):
            return item
        return OwnerReference.model_validate(dict(item), strict=True)
    # Strict JSON, as OpenAPI states the types: "true" is not a boolean here.
    return OwnerReference.model_validate_json(json.dumps(item), strict=True)


def _causes(exc: ValidationError, prefix: str) -> list[tuple[str, str]]:
    """Each failing field by its JSON path under `prefix`, as the API reports pydantic's."""
    causes = []
    for err in exc.errors(include_url=False):
        path = ".".join(str(part) for part in err["loc"])
        causes.append((f"{prefix}.{path}" if path else prefix, err["msg"]))
    return causes
