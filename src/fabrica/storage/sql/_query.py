"""Translations between fabrica's storage terms and SQL: selectors, rows, errors.

Selectors become EXISTS subqueries on ``fabrica_labels``, one per requirement, so the
database filters and pages (``WHERE name > :after ORDER BY name LIMIT :n``) and returns only
the page. As in Kubernetes, ``!=`` and ``notin`` match resources without the key, which
``NOT EXISTS`` gives for free. Field requirements (``?fieldSelector=``) become EXISTS
subqueries on ``fabrica_field_index`` by the hash of the value (``metadata.name`` compares
the name column).

Errors: anything that says "the database cannot be reached right now" (refused or dropped
connections, a server shutting down or starting, a pool or lock timeout) becomes
`Unavailable`, which the server answers with 503 and Retry-After; everything else stays an
error, so a bug is never disguised as an outage.
"""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any

from sqlalchemy import ColumnElement, Select, and_, exists, not_, select
from sqlalchemy import exc as sa_exc
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.sql.compiler import SQLCompiler

from ...resource import FieldRequirement, Requirement, Selector
from .._base import Document
from .._unique import key_hash
from ._schema import field_index, labels, resources

__all__ = [
    "decode",
    "encode",
    "field_clause",
    "is_deadlock",
    "is_unavailable",
    "list_query",
    "resource_columns",
    "selector_clause",
    "value_hash",
    "with_stored_version",
]

#: Selected by the resources' own name column, not the field index.
NAME_FIELD = "metadata.name"

# SQLSTATE classes: 08 connection exception, 53 insufficient resources, 57 operator
# intervention (admin shutdown, cannot connect now), 40 transaction rollback (serialisation
# failure, deadlock): all worth a retry.
_RETRYABLE_SQLSTATE = ("08", "53", "57", "40")
# MySQL error codes: lost connection, gone away, can't connect, deadlock, lock wait timeout,
# server shutdown, too many connections.
_RETRYABLE_MYSQL = {2002, 2003, 2006, 2013, 2055, 1040, 1053, 1205, 1213, 1927, 4031}
_MYSQL_DEADLOCK = 1213
_SQLITE_RETRYABLE = ("locked", "busy", "unable to open", "disk i/o")


def encode(doc: Document) -> str:
    """Compact JSON; ASCII-only, so no database charset or lone surrogate can garble it."""
    return json.dumps(doc, separators=(",", ":"))


def decode(text: str) -> Document:
    doc = json.loads(text)
    if not isinstance(doc, dict):
        raise ValueError("stored document is not a JSON object")
    return doc


def with_stored_version(text: str, version: int) -> Document:
    """A stored document with its ``metadata.resourceVersion`` from the row's version
    column. Documents are stored without it (a write learns its version last, see
    `_ops`); rows written by older releases hold one in their JSON: the column wins."""
    doc = decode(text)
    meta = doc.get("metadata")
    if isinstance(meta, dict):
        meta["resourceVersion"] = str(version)
    return doc


def resource_columns(doc: Document) -> dict[str, Any]:
    """The columns that mirror the document (for operators reading the table)."""
    meta = doc.get("metadata") or {}
    generation = meta.get("generation")
    return {
        "kind": str(doc.get("kind") or "")[:100] or None,
        "generation": generation if isinstance(generation, int) else None,
        "created_at": _timestamp(meta.get("createdAt")),
        "updated_at": _timestamp(meta.get("updatedAt")),
        "deletion_timestamp": _timestamp(meta.get("deletionTimestamp")),
    }


def _timestamp(value: Any) -> datetime | None:
    if not isinstance(value, str):
        return None
    try:
        return datetime.fromisoformat(value)
    except ValueError:
        return None


def selector_clause(collection: str, requirement: Requirement) -> ColumnElement[bool]:
    conditions = [labels.c.collection == collection, labels.c.uid == resources.c.uid,
                  labels.c.key == requirement.key]
    if requirement.operator in ("=", "in", "!=", "notin"):
        values = requirement.values
        conditions.append(labels.c.value == values[0] if len(values) == 1
                          else labels.c.value.in_(values))
    found = exists().where(and_(*conditions))
    return found if requirement.operator in ("=", "in", "exists") else not_(found)


class _UnindexedName(ColumnElement[str]):
    """The name column, written ``+name`` on SQLite (unary plus changes no value, and
    keeps the column's collation) so that its planner cannot use the name index for it."""

    inherit_cache = True
    type = resources.c.name.type


@compiles(_UnindexedName)
def _unindexed_name(element: _UnindexedName, compiler: SQLCompiler, **kw: Any) -> str:
    return compiler.process(resources.c.name, **kw)


@compiles(_UnindexedName, "sqlite")
def _unindexed_name_sqlite(element: _UnindexedName, compiler: SQLCompiler, **kw: Any) -> str:
    return "+" + compiler.process(resources.c.name, **kw)


def value_hash(text: str) -> str:
    """A field's value as the field index holds it: the SHA-256 of its text
    (`fabrica.resource.field_text`), hex."""
    return key_hash(text)


def field_clause(collection: str, requirement: FieldRequirement) -> ColumnElement[bool]:
    """`requirement` as a condition on a `resources` row: by the name column, or by the
    field index's rows of the value."""
    if requirement.path == NAME_FIELD:
        if requirement.operator == "=":
            return resources.c.name == requirement.value
        return resources.c.name != requirement.value
    holders = select(field_index.c.uid).where(
        field_index.c.collection == collection, field_index.c.field == requirement.path,
        field_index.c.value_hash == value_hash(requirement.value))
    if requirement.operator == "=":
        return resources.c.uid.in_(holders)
    return resources.c.uid.not_in(holders)


def list_query(
    collection: str, selector: Selector | None, limit: int | None, after: str | None
) -> Select[str, int]:
    query = (select(resources.c.document, resources.c.resource_version)
             .where(resources.c.collection == collection))
    for requirement in selector.requirements if selector else ():
        query = query.where(selector_clause(collection, requirement))
    fields = selector.fields if selector else ()
    for field in fields:
        query = query.where(field_clause(collection, field))
    name: ColumnElement[str] = resources.c.name
    if any(f.operator == "=" and f.path != NAME_FIELD for f in fields):
        # Few resources hold a value: read them by the index, then page and sort them.
        # SQLite would rather walk the collection's name index (it has no statistics to
        # know better), so there the name is one no index gives (`_UnindexedName`).
        name = _UnindexedName()
    if after is not None:
        query = query.where(name > after)
    query = query.order_by(name)
    return query if limit is None else query.limit(limit)


def is_unavailable(exc: BaseException) -> bool:
    """Whether `exc` means the database is out of reach for now (see the module docstring)."""
    if isinstance(exc, sa_exc.TimeoutError):  # no pooled connection came free in time
        return True
    if isinstance(exc, sa_exc.DBAPIError):
        if exc.connection_invalidated:
            return True
        if isinstance(exc, (sa_exc.IntegrityError, sa_exc.ProgrammingError, sa_exc.DataError)):
            return False
    return any(_retryable(e) for e in _chain(exc))


def is_deadlock(exc: BaseException) -> bool:
    """Whether the database rolled `exc`'s transaction back to break a deadlock."""
    for cause in _chain(exc):
        sqlstate = getattr(cause, "sqlstate", None) or getattr(cause, "pgcode", None)
        if sqlstate == "40P01":
            return True
        module = type(cause).__module__
        if (module.startswith(("pymysql", "aiomysql")) and cause.args
                and cause.args[0] == _MYSQL_DEADLOCK):
            return True
    return False


def _chain(exc: BaseException) -> list[BaseException]:
    seen: list[BaseException] = []
    current: BaseException | None = exc
    while current is not None and current not in seen and len(seen) < 10:
        seen.append(current)
        if isinstance(current, sa_exc.DBAPIError) and current.orig is not None:
            seen.append(current.orig)
        current = current.__cause__ or current.__context__
    return seen


def _retryable(exc: BaseException) -> bool:
    if isinstance(exc, (OSError, ConnectionError, TimeoutError)):
        return True
    sqlstate = getattr(exc, "sqlstate", None) or getattr(exc, "pgcode", None)
    if isinstance(sqlstate, str):
        return sqlstate.startswith(_RETRYABLE_SQLSTATE)
    name = type(exc).__name__
    module = type(exc).__module__
    if module.startswith("asyncpg") and name in (
        "ConnectionDoesNotExistError", "InterfaceError", "ConnectionFailureError",
        "InternalClientError",
    ):
        return "closed" in str(exc) or "connection" in str(exc).lower()
    if module.startswith("pymysql") or module.startswith("aiomysql"):
        code = exc.args[0] if exc.args and isinstance(exc.args[0], int) else None
        return code in _RETRYABLE_MYSQL or (code is None and name == "InterfaceError")
    if module.startswith("sqlite3"):
        return any(word in str(exc).lower() for word in _SQLITE_RETRYABLE)
    return False
