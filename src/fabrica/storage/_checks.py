"""What a backend refuses before storing anything: the same checks for every backend.

The rules themselves (names, uids, labels) belong to `fabrica.resource`; this module only
applies them to documents and turns a violation into `Invalid`, which the server answers
with 400. Ids that are merely looked up are not refused here: a malformed one names no
stored resource, so the backends answer `NotFound` for it, without asking a database about
it (`is_version_id`: PostgreSQL fails on a NUL in any string it is sent).
"""

from __future__ import annotations

import re
from collections.abc import Mapping

from ..resource import (
    is_dns1123_subdomain,
    is_uid,
    is_valid_plural,
    label_key_error,
    label_value_error,
)
from ._base import Document, Invalid

__all__ = ["check_collection", "check_labels", "check_new", "check_update", "is_version_id"]

#: A spec snapshot's id as the store writes them: ``v1``, ``v2``...
_VERSION_ID = re.compile(r"v[0-9]{1,12}")


def check_collection(collection: str) -> None:
    if not is_valid_plural(collection):
        raise Invalid(f"invalid collection name {collection!r}")


def check_new(doc: Document) -> None:
    """A document about to be created: its uid, name and labels."""
    meta = doc["metadata"]
    if not isinstance(meta.get("uid"), str) or not is_uid(meta["uid"]):
        raise Invalid(f"invalid uid {meta.get('uid')!r}")
    if not isinstance(meta.get("name"), str) or not is_dns1123_subdomain(meta["name"]):
        raise Invalid(f"invalid name {meta.get('name')!r}")
    check_labels(meta.get("labels") or {})


def check_update(doc: Document) -> None:
    """A replacement document: its labels (its uid and name are the stored ones')."""
    check_labels(doc["metadata"].get("labels") or {})


def check_labels(values: Mapping[str, str]) -> None:
    for key, value in values.items():
        problem = label_key_error(key) or label_value_error(value)
        if problem is not None:
            raise Invalid(f"invalid label {key}={value!r}: {problem}")


def is_version_id(version_id: str) -> bool:
    return _VERSION_ID.fullmatch(version_id) is not None
