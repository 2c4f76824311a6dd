"""The field rules of SPEC section 10 the store applies on every write, whoever writes:
the unique keys a document holds (enforced by the storage, atomically with the write) and
immutable fields (refused here, before the compare-and-swap).

Values compare in the form `fabrica.resource.unique_key` gives them (strings in Unicode
NFC), for `Immutable` as for `Unique`: rewriting a serial number with the same characters
composed differently is not a change of it.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from ..resource import KindRules, Resource, field_value, unique_key
from ..storage import Document, Storage

__all__ = ["ImmutableFieldError", "check_immutable", "prepare_fields", "prepare_unique",
           "unique_keys"]


class ImmutableFieldError(ValueError):
    """A write would change an `Immutable` field (the server answers 422)."""

    def __init__(self, kind: str, field: str) -> None:
        super().__init__(f"{kind} {field} is immutable: it cannot change once set")
        self.field = field


def unique_keys(rules: KindRules, document: Document) -> dict[str, str | None]:
    """Every unique constraint's key of `document` (None: it holds none), by name."""
    return {"+".join(paths): unique_key([field_value(document, path) for path in paths])
            for paths in rules.unique}


def check_immutable(kind: str, rules: KindRules, current: Document, wanted: Document) -> None:
    """`ImmutableFieldError` for the first immutable field `wanted` changes. A field unset
    so far may be set once (an object created before the field was marked, or left empty
    on create)."""
    for path in rules.immutable:
        before = _canonical(field_value(current, path))
        if before is not None and before != _canonical(field_value(wanted, path)):
            raise ImmutableFieldError(kind, path)


def _canonical(value: Any) -> str | None:
    return unique_key([value])


async def prepare_unique(storage: Storage, kinds: Iterable[type[Resource[Any, Any]]]) -> None:
    """At start: every kind's unique constraints built over what is stored (a kind that
    holds duplicates refuses to start: `DuplicateValues` names them), and constraints a
    kind dropped forgotten. Only kinds that declare some are asked (a service without
    unique fields touches no storage at start); so a kind that drops *all* its unique
    fields keeps its built keys until it declares one again."""
    for kind in kinds:
        info = kind.resource_info
        constraints = ["+".join(paths) for paths in info.rules.unique]
        if not constraints:
            continue
        prepare = getattr(storage, "prepare_unique", None)
        if prepare is None:
            raise TypeError(f"{info.kind} has unique fields, which the {storage.name} "
                            "storage cannot keep")
        await prepare(info.plural, constraints)


async def prepare_fields(storage: Storage, kinds: Iterable[type[Resource[Any, Any]]]) -> None:
    """At start: every kind's selectable fields (`KindRules.selectable`) handed to the
    storage, which indexes them (SQL builds the index of a field new to it from what is
    stored), so that lists by ``?fieldSelector=`` read an index whoever serves them.

    Only kinds with a field besides ``metadata.name`` (which needs no index) are asked: a
    service without any touches no storage at start (on MariaDB a read made in the
    lifespan's task left a connection behind, see `check_storage_key`). So, as for unique
    constraints, a kind that drops *all* its indexed fields (and has no ``status.phase``)
    keeps their rows, no longer kept current; declaring one of them again later needs its
    rows dropped (``DELETE FROM fabrica_indexed_fields WHERE collection = ...``) to be
    built afresh."""
    prepare = getattr(storage, "prepare_fields", None)
    if prepare is None:  # a backend of its own without field selectors: lists refuse them
        return
    for kind in kinds:
        info = kind.resource_info
        if any(path != "metadata.name" for path in info.rules.selectable):
            await prepare(info.plural, info.rules.selectable)
