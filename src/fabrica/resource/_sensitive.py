"""Sensitive fields (SPEC section 10): written, never read back.

A spec field marked ``Sensitive()`` is *omitted* from everything a reader gets: responses to
reads and writes, lists, watch events, CloudEvents, spec-history entries and error details.
Omitted rather than replaced by a placeholder, because that is what OpenAPI's ``writeOnly``
means, it fits a field of any type, and a reader cannot tell an empty secret from a set one.
So a sensitive field needs a default (a reader's object must be valid without it), and a
write that leaves it out keeps the stored value: a client that read a resource, changed
another field and sent it back does not erase the secret it never saw.

Redaction happens at those edges only. The objects the store hands reconcilers and hooks
hold the real value; with ``--encryption-key`` storage holds it encrypted (`fabrica.store`).
Sensitive fields are also left out of the model's ``repr``, so logging an object does not
log its secrets.

A field is sensitive in an API version when that version's spec marks it so; values are
carried between versions by JSON name.
"""

from __future__ import annotations

import functools
from collections.abc import Iterable, Mapping
from typing import Any, Final, get_args

from pydantic import BaseModel
from pydantic_core.core_schema import ErrorType

from ._rules import Sensitive

__all__ = [
    "hide_sensitive",
    "keep_left_out",
    "left_out",
    "redact_details",
    "redact_spec",
    "sensitive_exclude",
    "sensitive_fields",
]

# pydantic's own messages name the rule, never the input; a user's validator may say anything.
_SAFE_ERRORS: Final = frozenset(get_args(ErrorType)) - {"value_error", "assertion_error"}
_HIDDEN_MESSAGE: Final = "invalid value (a sensitive field: its message is not shown)"


@functools.cache
def sensitive_fields(spec_type: type[BaseModel]) -> tuple[tuple[str, str], ...]:
    """The (Python name, JSON name) of each field of `spec_type` marked ``Sensitive()``."""
    return tuple((name, field.alias or name) for name, field in spec_type.model_fields.items()
                 if any(isinstance(meta, Sensitive) for meta in field.metadata))


def hide_sensitive(resource_type: type[BaseModel], spec_type: type[BaseModel]) -> None:
    """Leave the sensitive fields of a kind's spec out of its ``repr`` and its validation
    errors' text (pydantic quotes the input there), and so out of log lines and
    tracebacks; called once per kind when it is declared."""
    fields = sensitive_fields(spec_type)
    if not fields:
        return
    for name, _ in fields:
        spec_type.model_fields[name].repr = False
    for model in (spec_type, resource_type):  # (each validator reads its own model's)
        model.model_config["hide_input_in_errors"] = True
        model.model_rebuild(force=True)


@functools.cache
def sensitive_exclude(resource_type: type[BaseModel]) -> dict[str, Any] | None:
    """The ``exclude=`` of `model_dump` that leaves out a resource's sensitive spec fields,
    or None when it has none (shared: not to be changed)."""
    spec_type = resource_type.model_fields["spec"].annotation
    if not isinstance(spec_type, type) or not issubclass(spec_type, BaseModel):
        return None
    names = {name for name, _ in sensitive_fields(spec_type)}
    return {"spec": names} if names else None


def redact_spec(spec_type: type[BaseModel], spec: Mapping[str, Any]) -> dict[str, Any]:
    """A spec document (JSON names) without `spec_type`'s sensitive fields."""
    hidden = {json_name for _, json_name in sensitive_fields(spec_type)}
    return {key: value for key, value in spec.items() if key not in hidden}


def left_out(spec: BaseModel) -> frozenset[str]:
    """The JSON names of the sensitive fields a written spec did not set (so the stored
    values stay)."""
    fields_set = spec.model_fields_set
    return frozenset(json_name for name, json_name in sensitive_fields(type(spec))
                     if name not in fields_set)


def keep_left_out(spec: BaseModel, stored: BaseModel | None, names: Iterable[str]) -> BaseModel:
    """`spec` with the stored value of each sensitive field named in `names` (JSON names)."""
    if stored is None:
        return spec
    names = set(names)
    kept = {name: getattr(stored, name) for name, json_name in sensitive_fields(type(spec))
            if json_name in names and name in type(stored).model_fields}
    return spec.model_copy(update=kept) if kept else spec


def redact_details(spec_type: type[BaseModel], prefix: str,
                   errors: Iterable[tuple[str, str, str]]) -> list[dict[str, str]]:
    """Error details ``(field path, message, pydantic error type)`` with the messages about a
    sensitive field replaced, unless pydantic wrote them (they never quote the input)."""
    hidden = {f"{prefix}.{json_name}" for _, json_name in sensitive_fields(spec_type)}
    details = []
    for field, message, kind in errors:
        secret = any(field == path or field.startswith(path + ".") for path in hidden)
        if secret and kind not in _SAFE_ERRORS:
            message = _HIDDEN_MESSAGE
        details.append({"field": field, "message": message})
    return details
