"""The SQL schema at the newest migration: what `SQLStorage` queries.

The alembic revisions in ``migrations/versions`` create it step by step and are the truth for
an existing database; these `Table` objects describe the result and must match it (a test
compares them).

- ``fabrica_resources``: one row per resource. The document is stored whole, as JSON text,
  so `get` returns exactly what was written, except its ``metadata.resourceVersion``: that
  is kept in the ``resource_version`` column only (stored empty in the JSON; older rows
  hold it there too, the column wins). The columns beside the document mirror what queries
  use (collection, uid, name, resourceVersion) and what an operator reading the table wants to
  see (kind, generation, timestamps, deletionTimestamp). Primary key (collection, uid);
  unique (collection, name), which also serves keyset paging by name.
- ``fabrica_labels``: one row per label, for selectors pushed into SQL as EXISTS
  subqueries; deleted with their resource (foreign key, ON DELETE CASCADE).
- ``fabrica_versions``: spec snapshots of versioned kinds, deleted with their resource.
- ``fabrica_revisions``: an auto-increment counter whose values become resourceVersions, so
  a version is never reused, even across a delete and re-create under the same name.
- ``fabrica_outbox``: the events of committed writes not yet relayed to the event bus,
  written in the write's own transaction (see `_outbox`), in ``seq`` order.
- ``fabrica_collections``: one row per collection: ``settled``, a revision up to which every
  number is settled (a committed change or a number no change will ever have; on SQLite
  and MySQL also the collection's revision counter), and the horizon of its change log.
  On PostgreSQL and MariaDB each collection also has a sequence of its own,
  ``fabrica_rev_<collection>``, its revision counter (see `_changes`).
- ``fabrica_unique``: the keys of kinds' unique constraints, one row per key (its SHA-256)
  with the uid holding it; the primary key refuses a second holder inside the write's
  transaction. Deleted with their resource. ``fabrica_unique_constraints``: the
  constraints whose keys have been built from the stored resources.
- ``fabrica_field_index``: the values of kinds' selectable fields (``Indexed()`` spec fields,
  ``status.phase``), one row per (resource, field) with the SHA-256 of the value's text
  (`fabrica.resource.field_text`; fixed size, so a 64 KiB value indexes like a short one),
  written in the write's transaction and indexed by (collection, field, value), so a list by
  ``?fieldSelector=`` reads the rows holding the value. Deleted with their resource.
  ``fabrica_indexed_fields``: the fields whose rows have been built from the stored
  resources (at start, `SQLStorage.prepare_fields`).
- ``fabrica_changes``: the change log, one row per write (create, update, delete) with the
  document as it became (its version is the change's revision), written in the write's
  transaction, and skip markers for numbers no change will have; compacted from the oldest.

Keys compare byte-wise on every database (PostgreSQL ``COLLATE "C"``, MySQL ``utf8mb4_bin``),
so names sort as they do in Python and label values are case-sensitive.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import (
    BigInteger,
    Column,
    DateTime,
    ForeignKeyConstraint,
    Index,
    Integer,
    MetaData,
    PrimaryKeyConstraint,
    String,
    Table,
    Text,
    UniqueConstraint,
)
from sqlalchemy.dialects import mysql
from sqlalchemy.types import TypeEngine

__all__ = [
    "MYSQL_TABLE_ARGS",
    "changes",
    "collections",
    "document_type",
    "field_index",
    "indexed_fields",
    "key_type",
    "labels",
    "metadata",
    "outbox",
    "resources",
    "revision_id_type",
    "revisions",
    "timestamp_type",
    "unique_constraints",
    "unique_keys",
    "versions",
]

#: Table options on MySQL/MariaDB: InnoDB (transactions, foreign keys) and full UTF-8.
MYSQL_TABLE_ARGS: dict[str, Any] = {"mysql_engine": "InnoDB", "mysql_charset": "utf8mb4",
                    "mariadb_engine": "InnoDB", "mariadb_charset": "utf8mb4"}


def key_type(length: int) -> TypeEngine[str]:
    """A string compared byte by byte (case-sensitive, Python's sort order)."""
    exact = mysql.VARCHAR(length, charset="utf8mb4", collation="utf8mb4_bin")
    return (String(length)
            .with_variant(String(length, collation="C"), "postgresql")
            .with_variant(exact, "mysql", "mariadb"))


def document_type() -> TypeEngine[str]:
    """JSON text of any size (MySQL's TEXT stops at 64 KiB)."""
    return Text().with_variant(mysql.LONGTEXT(), "mysql", "mariadb")


def timestamp_type() -> TypeEngine[datetime]:
    return DateTime(timezone=True).with_variant(mysql.DATETIME(fsp=6), "mysql", "mariadb")


def revision_id_type() -> TypeEngine[int]:
    """SQLite's AUTOINCREMENT needs exactly INTEGER; elsewhere a 64-bit counter."""
    return BigInteger().with_variant(Integer(), "sqlite")


metadata = MetaData()

resources = Table(
    "fabrica_resources",
    metadata,
    Column("collection", key_type(63), nullable=False),
    Column("uid", key_type(100), nullable=False),
    Column("name", key_type(253), nullable=False),
    Column("kind", String(100)),
    Column("resource_version", BigInteger, nullable=False),
    Column("generation", BigInteger),
    Column("created_at", timestamp_type()),
    Column("updated_at", timestamp_type()),
    Column("deletion_timestamp", timestamp_type()),
    Column("document", document_type(), nullable=False),
    PrimaryKeyConstraint("collection", "uid", name="pk_fabrica_resources"),
    UniqueConstraint("collection", "name", name="uq_fabrica_resources_name"),
    **MYSQL_TABLE_ARGS,
)

labels = Table(
    "fabrica_labels",
    metadata,
    Column("collection", key_type(63), nullable=False),
    Column("uid", key_type(100), nullable=False),
    Column("key", key_type(317), nullable=False),
    Column("value", key_type(63), nullable=False),
    PrimaryKeyConstraint("collection", "uid", "key", name="pk_fabrica_labels"),
    ForeignKeyConstraint(
        ["collection", "uid"], ["fabrica_resources.collection", "fabrica_resources.uid"],
        ondelete="CASCADE", name="fk_fabrica_labels_resource",
    ),
    Index("ix_fabrica_labels_selector", "collection", "key", "value"),
    **MYSQL_TABLE_ARGS,
)

versions = Table(
    "fabrica_versions",
    metadata,
    Column("collection", key_type(63), nullable=False),
    Column("uid", key_type(100), nullable=False),
    Column("version_id", key_type(20), nullable=False),
    Column("number", BigInteger, nullable=False),
    Column("document", document_type(), nullable=False),
    PrimaryKeyConstraint("collection", "uid", "version_id", name="pk_fabrica_versions"),
    ForeignKeyConstraint(
        ["collection", "uid"], ["fabrica_resources.collection", "fabrica_resources.uid"],
        ondelete="CASCADE", name="fk_fabrica_versions_resource",
    ),
    **MYSQL_TABLE_ARGS,
)

revisions = Table(
    "fabrica_revisions",
    metadata,
    Column("id", revision_id_type(), primary_key=True, autoincrement=True),
    sqlite_autoincrement=True,
    **MYSQL_TABLE_ARGS,
)

outbox = Table(
    "fabrica_outbox",
    metadata,
    Column("seq", revision_id_type(), primary_key=True, autoincrement=True),
    Column("resource", String(170), nullable=False),
    Column("subject", String(255), nullable=False),
    Column("event_id", String(200), nullable=False),
    Column("payload", document_type(), nullable=False),
    Column("created_at", timestamp_type(), nullable=False),
    sqlite_autoincrement=True,
    **MYSQL_TABLE_ARGS,
)

collections = Table(
    "fabrica_collections",
    metadata,
    Column("collection", key_type(63), nullable=False),
    Column("settled", BigInteger, nullable=False),
    Column("horizon", BigInteger, nullable=False),
    PrimaryKeyConstraint("collection", name="pk_fabrica_collections"),
    **MYSQL_TABLE_ARGS,
)

changes = Table(
    "fabrica_changes",
    metadata,
    Column("collection", key_type(63), nullable=False),
    Column("revision", BigInteger, nullable=False),
    Column("uid", key_type(100), nullable=False),
    Column("type", String(10), nullable=False),
    Column("document", document_type(), nullable=False),
    PrimaryKeyConstraint("collection", "revision", name="pk_fabrica_changes"),
    **MYSQL_TABLE_ARGS,
)

unique_keys = Table(
    "fabrica_unique",
    metadata,
    Column("collection", key_type(63), nullable=False),
    Column("constraint_name", key_type(255), nullable=False),
    Column("key_hash", key_type(64), nullable=False),
    Column("uid", key_type(100), nullable=False),
    PrimaryKeyConstraint("collection", "constraint_name", "key_hash", name="pk_fabrica_unique"),
    ForeignKeyConstraint(
        ["collection", "uid"], ["fabrica_resources.collection", "fabrica_resources.uid"],
        ondelete="CASCADE", name="fk_fabrica_unique_resource",
    ),
    Index("ix_fabrica_unique_holder", "collection", "uid"),
    **MYSQL_TABLE_ARGS,
)

unique_constraints = Table(
    "fabrica_unique_constraints",
    metadata,
    Column("collection", key_type(63), nullable=False),
    Column("constraint_name", key_type(255), nullable=False),
    PrimaryKeyConstraint("collection", "constraint_name", name="pk_fabrica_unique_constraints"),
    **MYSQL_TABLE_ARGS,
)

field_index = Table(
    "fabrica_field_index",
    metadata,
    Column("collection", key_type(63), nullable=False),
    Column("field", key_type(255), nullable=False),
    Column("value_hash", key_type(64), nullable=False),
    Column("uid", key_type(100), nullable=False),
    PrimaryKeyConstraint("collection", "field", "uid", name="pk_fabrica_field_index"),
    ForeignKeyConstraint(
        ["collection", "uid"], ["fabrica_resources.collection", "fabrica_resources.uid"],
        ondelete="CASCADE", name="fk_fabrica_field_index_resource",
    ),
    Index("ix_fabrica_field_index_value", "collection", "field", "value_hash"),
    Index("ix_fabrica_field_index_holder", "collection", "uid"),
    **MYSQL_TABLE_ARGS,
)

indexed_fields = Table(
    "fabrica_indexed_fields",
    metadata,
    Column("collection", key_type(63), nullable=False),
    Column("field", key_type(255), nullable=False),
    PrimaryKeyConstraint("collection", "field", name="pk_fabrica_indexed_fields"),
    **MYSQL_TABLE_ARGS,
)
