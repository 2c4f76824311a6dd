"""The storage operations as SQL, each one function on one connection in one transaction.

They are plain synchronous functions of a SQLAlchemy `Connection`, so the same code runs on
every database: `SQLStorage` calls them through ``AsyncConnection.run_sync`` on PostgreSQL
and MySQL (each ``execute`` awaits the async driver underneath), and in a worker thread on
SQLite, whose driver is synchronous anyway: one thread hop per operation instead of one per
statement. `SQLStorage` opens and commits the transaction around each call.
"""

from __future__ import annotations

import builtins
import re
from collections.abc import Mapping
from typing import Any

from sqlalchemy import Connection, Select, delete, insert, select, text, update

from ._base import Conflict, Document, Invalid, NotFound
from ._sql_query import decode, encode, resource_columns
from ._sql_schema import labels, resources, revisions, versions

__all__ = [
    "create",
    "delete_resource",
    "delete_version",
    "fetch_one",
    "list_documents",
    "list_versions",
    "uid_taken",
    "update_resource",
]

_VERSION_ID = re.compile(r"^v[0-9]{1,12}$")
_REVISION_ROWS_KEPT = 100  # fabrica_revisions is pruned every this many writes


# -- reads -------------------------------------------------------------------------------


def fetch_one(conn: Connection, query: Select[str]) -> Document | None:
    found = conn.execute(query).scalar_one_or_none()
    return None if found is None else decode(found)


def list_documents(conn: Connection, query: Select[str]) -> builtins.list[Document]:
    return [decode(row) for row in conn.execute(query).scalars()]


def list_versions(conn: Connection, collection: str, uid: str) -> builtins.list[Document] | None:
    """Spec snapshots, oldest first; None when the resource does not exist."""
    if not _exists(conn, collection, uid):
        return None
    query = (select(versions.c.document)
             .where(versions.c.collection == collection, versions.c.uid == uid)
             .order_by(versions.c.number, versions.c.version_id))
    return list_documents(conn, query)


def uid_taken(conn: Connection, collection: str, uid: str) -> bool:
    return _exists(conn, collection, uid)


# -- writes ------------------------------------------------------------------------------


def create(
    conn: Connection, collection: str, doc: Document, snapshot: Document | None
) -> Document:
    """INSERT; a taken uid or name raises the database's IntegrityError."""
    meta = doc["metadata"]
    stored = _with_version(doc, _next_revision(conn))
    conn.execute(insert(resources).values(
        collection=collection, uid=meta["uid"], name=meta["name"], **_row(stored)))
    _write_labels(conn, collection, meta["uid"], meta.get("labels") or {})
    if snapshot is not None:
        _write_snapshot(conn, collection, meta["uid"], snapshot)
    return stored


def update_resource(
    conn: Connection,
    collection: str,
    doc: Document,
    expected: str,
    snapshot: Document | None,
) -> Document:
    """Compare-and-swap on resource_version: one UPDATE that matches only the expected row."""
    meta = doc["metadata"]
    uid, name = meta["uid"], meta["name"]
    stored = _with_version(doc, _next_revision(conn))
    swapped = conn.execute(
        update(resources)
        .where(resources.c.collection == collection, resources.c.uid == uid,
               resources.c.resource_version == _version_number(expected),
               resources.c.name == name)
        .values(**_row(stored)))
    if swapped.rowcount != 1:
        _explain_failed_swap(conn, collection, uid, name, expected)
    conn.execute(delete(labels).where(labels.c.collection == collection, labels.c.uid == uid))
    _write_labels(conn, collection, uid, meta.get("labels") or {})
    if snapshot is not None:
        _write_snapshot(conn, collection, uid, snapshot)
    return stored


def delete_resource(
    conn: Connection, collection: str, uid: str, expected: str | None
) -> Document:
    """Lock the row, compare, delete; labels and snapshots go by ON DELETE CASCADE."""
    where = (resources.c.collection == collection, resources.c.uid == uid)
    row = conn.execute(select(resources.c.resource_version, resources.c.document)
                       .where(*where).with_for_update()).first()
    if row is None:
        raise NotFound(collection, uid)
    actual = str(row.resource_version)
    if expected is not None and actual != expected:
        raise Conflict(collection, uid, expected, actual)
    conn.execute(delete(resources).where(*where,
                                         resources.c.resource_version == row.resource_version))
    return decode(row.document)


def delete_version(conn: Connection, collection: str, uid: str, version_id: str) -> None:
    removed = conn.execute(delete(versions).where(
        versions.c.collection == collection, versions.c.uid == uid,
        versions.c.version_id == version_id))
    if removed.rowcount != 1:
        raise NotFound(collection, f"{uid}/versions/{version_id}")


# -- helpers -----------------------------------------------------------------------------


def _next_revision(conn: Connection) -> int:
    """A number no write of this database has had: a sequence or an auto-increment."""
    if conn.dialect.name == "postgresql":
        query = text("SELECT nextval(pg_get_serial_sequence('fabrica_revisions', 'id'))")
        return int(conn.execute(query).scalar_one())
    result = conn.execute(insert(revisions))
    (revision,) = result.inserted_primary_key or (None,)
    assert revision is not None
    if revision % _REVISION_ROWS_KEPT == 0:
        # Only the counter matters, but the newest row stays: an old MySQL restarts its
        # auto-increment at the largest id in the table.
        conn.execute(delete(revisions).where(revisions.c.id < revision))
    return int(revision)


def _write_labels(conn: Connection, collection: str, uid: str, values: Mapping[str, str]
                  ) -> None:
    if values:  # executemany: one round trip with every driver, and a cached statement
        conn.execute(insert(labels), [
            {"collection": collection, "uid": uid, "key": key, "value": value}
            for key, value in values.items()])


def _write_snapshot(conn: Connection, collection: str, uid: str, snapshot: Document) -> None:
    version_id = snapshot["versionId"]
    if not isinstance(version_id, str) or not _VERSION_ID.match(version_id):
        raise Invalid(f"invalid spec version id {version_id!r}")
    conn.execute(delete(versions).where(
        versions.c.collection == collection, versions.c.uid == uid,
        versions.c.version_id == version_id))
    conn.execute(insert(versions).values(
        collection=collection, uid=uid, version_id=version_id, number=int(version_id[1:]),
        document=encode(snapshot)))


def _exists(conn: Connection, collection: str, uid: str) -> bool:
    return conn.execute(select(resources.c.resource_version).where(
        resources.c.collection == collection, resources.c.uid == uid)).first() is not None


def _explain_failed_swap(
    conn: Connection, collection: str, uid: str, name: str, expected: str
) -> None:
    row = conn.execute(select(resources.c.resource_version, resources.c.name).where(
        resources.c.collection == collection, resources.c.uid == uid)).first()
    if row is None:
        raise NotFound(collection, uid)
    actual = str(row.resource_version)
    if actual == expected and row.name != name:
        raise Invalid("metadata.name is immutable")
    raise Conflict(collection, uid, expected, actual)


def _row(stored: Document) -> dict[str, Any]:
    return {"resource_version": int(stored["metadata"]["resourceVersion"]),
            "document": encode(stored), **resource_columns(stored)}


def _with_version(doc: Document, revision: int) -> Document:
    return {**doc, "metadata": {**doc["metadata"], "resourceVersion": str(revision)}}


def _version_number(version: str) -> int:
    """A resourceVersion as the column holds it; -1 (never stored) when it cannot be one."""
    return int(version) if version.isdigit() and len(version) < 19 else -1
