"""A kind's own rules (SPEC section 10): field markers and the class keywords behind them.

Spec fields carry markers through `typing.Annotated`::

    class BMCSpec(Model):
        serial: Annotated[str, Unique(), Immutable()]
        mac: Annotated[str, Unique(), Indexed()]
        password: Annotated[str, Sensitive()] = ""

and the kind's class keywords add what a field cannot say alone::

    class BMC(Resource[BMCSpec, BMCStatus], unique=[("rackUID", "slot")],
              verbs=("list", "get", "create"), exposure="public", max_body_size="64KiB"):

Both are read once, when the class is declared, into `KindRules` (``BMC.resource_info.rules``),
which the store, storage, server and code generation consult instead of walking type hints
again. A rule that cannot hold (a marker on a field that is not in the spec, a unique list
field, an unknown verb) is a TypeError at class definition, not a surprise at the first write.

Values are compared as stored JSON values, with one exception: strings are compared in
Unicode normal form NFC, so ``"é"`` written as one code point and as ``e`` plus a combining
accent are the same value for `Unique` (a person reading a serial number cannot tell them
apart either). An unset value (``None`` or ``""``) holds nothing: like SQL's NULL, any number
of resources may leave a unique field empty.
"""

from __future__ import annotations

import json
import unicodedata
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from enum import Enum
from types import UnionType
from typing import Any, Final, Literal, Union, get_args, get_origin

from pydantic import BaseModel

from .._units import byte_size

__all__ = [
    "ALL_VERBS",
    "EXPOSURES",
    "Exposure",
    "Immutable",
    "Indexed",
    "KindRules",
    "Sensitive",
    "Unique",
    "Verb",
    "field_value",
    "kind_rules",
    "unique_key",
]

Verb = Literal["list", "get", "watch", "create", "update", "patch", "delete", "status",
               "versions"]
ALL_VERBS: Final[tuple[Verb, ...]] = ("list", "get", "watch", "create", "update", "patch",
                                      "delete", "status", "versions")
Exposure = Literal["protected", "public", "internal"]
EXPOSURES: Final[tuple[Exposure, ...]] = ("protected", "public", "internal")

# Fields that every kind can be selected by, besides its Indexed ones.
_ALWAYS_SELECTABLE: Final = ("metadata.name",)


@dataclass(frozen=True)
class Unique:
    """No two resources of the kind hold the same value of this spec field."""


@dataclass(frozen=True)
class Immutable:
    """Set on create; a later write that changes it is refused (422)."""


@dataclass(frozen=True)
class Sensitive:
    """Write-only: never shown to readers; stored encrypted with ``--encryption-key``."""


@dataclass(frozen=True)
class Indexed:
    """Selectable with ``?fieldSelector=spec.FIELD=VALUE``, served from an index."""


_MARKERS = (Unique, Immutable, Sensitive, Indexed)
_SCALARS = (str, int, float, bool)


@dataclass(frozen=True)
class KindRules:
    """What a kind allows and requires beyond its field types. Field paths are the JSON
    paths of the wire format (``spec.rackUID``), the names clients and errors use."""

    unique: tuple[tuple[str, ...], ...] = ()  # each: one field, or a combination
    immutable: tuple[str, ...] = ()
    sensitive: tuple[str, ...] = ()
    indexed: tuple[str, ...] = ()
    verbs: frozenset[Verb] = frozenset(ALL_VERBS)
    exposure: Exposure = "protected"
    max_body_size: int | None = None  # None: the server's limit
    has_phase: bool = False  # status.phase exists, so it can be selected

    @property
    def selectable(self) -> tuple[str, ...]:
        """The field paths ``?fieldSelector=`` accepts, in the order an error lists them."""
        phase = ("status.phase",) if self.has_phase else ()
        return (*_ALWAYS_SELECTABLE, *phase, *self.indexed)

    def allows(self, verb: Verb) -> bool:
        return verb in self.verbs

    @property
    def served(self) -> bool:
        """Whether the kind has HTTP routes at all (``internal`` kinds have none)."""
        return self.exposure != "internal"


def kind_rules(
    kind: str,
    spec_type: type[BaseModel],
    status_type: type[BaseModel],
    *,
    unique: Iterable[str | Sequence[str]] = (),
    verbs: Iterable[str] | None = None,
    exposure: str = "protected",
    max_body_size: int | str | None = None,
) -> KindRules:
    """Read `spec_type`'s markers and the class keywords into `KindRules` (TypeError when a
    rule cannot hold)."""
    marked = _marked_fields(kind, spec_type)
    names = _json_names(spec_type)
    combinations: list[tuple[str, ...]] = [(path,) for path in marked[Unique]]
    for entry in _as_list(kind, "unique", unique):
        fields = (entry,) if isinstance(entry, str) else tuple(entry)
        if not fields or not all(isinstance(field, str) for field in fields):
            raise TypeError(f"{kind}: unique= takes spec field names or tuples of them, "
                            f"not {entry!r}")
        paths = tuple(_spec_path(kind, spec_type, names, field) for field in fields)
        if len(set(paths)) != len(paths):
            raise TypeError(f"{kind}: unique={entry!r} names a field twice")
        combinations.append(paths)
    for paths in combinations:
        for path in paths:
            _check_scalar(kind, spec_type, path)
    return KindRules(
        unique=tuple(dict.fromkeys(combinations)),
        immutable=marked[Immutable],
        sensitive=_sensitive(kind, marked),
        indexed=tuple(dict.fromkeys(marked[Indexed])),
        verbs=_verbs(kind, verbs),
        exposure=_exposure(kind, exposure),
        max_body_size=_body_size(kind, max_body_size),
        has_phase="phase" in status_type.model_fields,
    )


def unique_key(values: Sequence[Any]) -> str | None:
    """The canonical form of one combination's values, as storage records it, or None when
    any of them is unset (an unset value holds nothing)."""
    if any(value is None or value == "" for value in values):
        return None
    canonical = [unicodedata.normalize("NFC", value) if isinstance(value, str) else value
                 for value in values]
    return json.dumps(canonical, ensure_ascii=False, separators=(",", ":"))


def field_value(document: Mapping[str, Any], path: str) -> Any:
    """The value at a dotted JSON path (``spec.rackUID``) of a wire document, or None."""
    value: Any = document
    for part in path.split("."):
        if not isinstance(value, Mapping):
            return None
        value = value.get(part)
    return value


def _marked_fields(kind: str, spec_type: type[BaseModel]) -> dict[type, tuple[str, ...]]:
    found: dict[type, list[str]] = {marker: [] for marker in _MARKERS}
    for name, field in spec_type.model_fields.items():
        path = f"spec.{field.alias or name}"
        for meta in field.metadata:
            if isinstance(meta, type) and meta in _MARKERS:
                raise TypeError(f"{kind}: {path} is marked with the class {meta.__name__}; "
                                f"write {meta.__name__}() (an instance)")
            if isinstance(meta, _MARKERS):
                found[type(meta)].append(path)
    return {marker: tuple(paths) for marker, paths in found.items()}


def _json_names(spec_type: type[BaseModel]) -> dict[str, str]:
    """Python and JSON names of the spec's fields, both mapped to the JSON name."""
    names: dict[str, str] = {}
    for name, field in spec_type.model_fields.items():
        names[name] = names[field.alias or name] = field.alias or name
    return names


def _spec_path(kind: str, spec_type: type[BaseModel], names: dict[str, str], field: str) -> str:
    bare = field.removeprefix("spec.")
    if bare not in names:
        known = ", ".join(sorted({*names.values()}))
        raise TypeError(f"{kind}: unique= names {field!r}, which is not a field of "
                        f"{spec_type.__name__} (its fields: {known or 'none'})")
    return f"spec.{names[bare]}"


def _check_scalar(kind: str, spec_type: type[BaseModel], path: str) -> None:
    json_name = path.removeprefix("spec.")
    for name, field in spec_type.model_fields.items():
        if (field.alias or name) == json_name:
            if not _is_scalar(field.annotation):
                raise TypeError(f"{kind}: {path} cannot be unique: only strings, numbers, "
                                "booleans and enums can (not lists, maps or objects)")
            return


def _is_scalar(annotation: Any) -> bool:
    if get_origin(annotation) is Literal:
        return True
    if get_origin(annotation) in (Union, UnionType):  # Optional[X]: scalar when X is
        return all(arg is type(None) or _is_scalar(arg) for arg in get_args(annotation))
    return (get_origin(annotation) is None and isinstance(annotation, type)
            and issubclass(annotation, (*_SCALARS, Enum)))


def _sensitive(kind: str, marked: dict[type, tuple[str, ...]]) -> tuple[str, ...]:
    for path in marked[Sensitive]:
        clash = [marker.__name__ for marker in (Unique, Indexed) if path in marked[marker]]
        if clash:
            # Unique and Indexed values are stored in the clear for lookups and named in
            # 409 details: a secret must not be either.
            raise TypeError(f"{kind}: {path} is Sensitive and {' and '.join(clash)}; a "
                            "sensitive value cannot be looked up or named in errors")
    return marked[Sensitive]


def _as_list(kind: str, keyword: str, value: Any) -> list[Any]:
    if isinstance(value, str) or not isinstance(value, Iterable):
        raise TypeError(f"{kind}: {keyword}= takes a list, not {value!r}")
    return list(value)


def _verbs(kind: str, verbs: Iterable[str] | None) -> frozenset[Verb]:
    if verbs is None:
        return frozenset(ALL_VERBS)
    given = _as_list(kind, "verbs", verbs)
    unknown = [verb for verb in given if verb not in ALL_VERBS]
    if unknown:
        raise TypeError(f"{kind}: unknown verbs {unknown!r}; the verbs are "
                        f"{', '.join(ALL_VERBS)}")
    return frozenset(verb for verb in ALL_VERBS if verb in given)


def _exposure(kind: str, exposure: str) -> Exposure:
    for known in EXPOSURES:
        if exposure == known:
            return known
    raise TypeError(f"{kind}: exposure={exposure!r}; use one of {', '.join(EXPOSURES)}")


def _body_size(kind: str, size: int | str | None) -> int | None:
    if size is None:
        return None
    if isinstance(size, bool) or not isinstance(size, (int, str)):
        raise TypeError(f"{kind}: max_body_size= takes bytes or a size like '64KiB'")
    try:
        value = byte_size(size) if isinstance(size, str) else size
    except ValueError as exc:
        raise TypeError(f"{kind}: max_body_size={size!r}: {exc}") from None
    if value < 1:
        raise TypeError(f"{kind}: max_body_size= must be at least one byte")
    return value
