"""Revisions from a sequence per collection; plans of lookups by uid pinned.

On PostgreSQL and MariaDB 10.5+ a collection's revisions now come from a sequence of its
own (``fabrica_rev_<collection>``), so the writes of one collection no longer wait for each
other to commit; readers keep the change log gap-free by never passing a revision whose
write may still commit, and fill the numbers of rolled-back writes with skip markers. Each
existing collection's sequence starts just above its row's revision, the newest any of its
writes had. The row's ``revision`` column becomes ``settled`` (every revision up to it is
settled; on SQLite and MySQL it stays the counter): a process of an earlier release fails
on it rather than take numbers the sequences hand out too.

PostgreSQL: the columns that decide how a resource, its labels and its spec snapshots are
found by uid get fixed statistics: ``collection`` n_distinct = 1 (a collection is a large
share of its table, as in a service with a few kinds), a uid of labels and snapshots -0.25
(a few rows per resource). Statistics sampled while a table held one resource made every
column look unique (or constant), and the planner then looked resources up by uid through
the (collection, name) index, or labels by a scan of the table, reading every row of the
collection; with these, the primary key is always the cheaper path.

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-04
"""

from __future__ import annotations

import zlib

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None

# Column statistics fixed by the schema: a collection is a large share of its table, and a
# uid has a few labels and spec snapshots (resources' uids are unique: their key says so).
_PINNED = {("fabrica_resources", "collection"): "1", ("fabrica_labels", "collection"): "1",
           ("fabrica_labels", "uid"): "-0.25", ("fabrica_versions", "collection"): "1",
           ("fabrica_versions", "uid"): "-0.25"}


def _sequenced(conn: sa.Connection) -> bool:
    """As `fabrica.storage.sql._changes.sequenced` at this revision."""
    dialect = conn.dialect
    if dialect.name == "postgresql":
        return True
    version = getattr(dialect, "server_version_info", None) or ()
    return bool(getattr(dialect, "is_mariadb", False)) and tuple(version[:2]) >= (10, 5)


def _sequence_name(collection: str) -> str:
    """As `fabrica.storage.sql._changes.sequence_name` at this revision."""
    base = collection.replace("-", "_")
    if len(base) > 51:
        base = f"{base[:42]}_{zlib.crc32(collection.encode()):08x}"
    return f"fabrica_rev_{base}"


def upgrade() -> None:
    conn = op.get_bind()
    op.alter_column("fabrica_collections", "revision", new_column_name="settled",
                    existing_type=sa.BigInteger(), existing_nullable=False)
    if _sequenced(conn):
        nocache = "" if conn.dialect.name == "postgresql" else " NOCACHE"
        rows = conn.execute(sa.text(
            "SELECT collection, settled FROM fabrica_collections")).all()
        for collection, settled in rows:
            conn.execute(sa.text(f"CREATE SEQUENCE {_sequence_name(collection)} "
                                 f"START WITH {int(settled) + 1}{nocache}"))
    if conn.dialect.name == "postgresql":
        for (table, column), distinct in _PINNED.items():
            conn.execute(sa.text(
                f"ALTER TABLE {table} ALTER COLUMN {column} SET (n_distinct = {distinct})"))
        for table in sorted({table for table, _ in _PINNED}):
            conn.execute(sa.text(f"ANALYZE {table}"))


def downgrade() -> None:
    conn = op.get_bind()
    if _sequenced(conn):
        _counters_back_into_rows(conn)
        conn.execute(sa.text("DELETE FROM fabrica_changes WHERE type = 'SKIP'"))
    if conn.dialect.name == "postgresql":
        for table, column in _PINNED:
            conn.execute(sa.text(
                f"ALTER TABLE {table} ALTER COLUMN {column} RESET (n_distinct)"))
    op.alter_column("fabrica_collections", "settled", new_column_name="revision",
                    existing_type=sa.BigInteger(), existing_nullable=False)


def _counters_back_into_rows(conn: sa.Connection) -> None:
    """Each row's revision becomes its sequence's next number (above every number handed
    out, so none is handed out twice); the sequences go."""
    postgres = conn.dialect.name == "postgresql"
    rows = conn.execute(sa.text("SELECT collection FROM fabrica_collections")).scalars().all()
    for collection in rows:
        sequence = _sequence_name(collection)
        nextval = f"nextval('{sequence}')" if postgres else f"NEXTVAL({sequence})"
        if _exists(conn, sequence):
            number = conn.execute(sa.text(f"SELECT {nextval}")).scalar_one()
            conn.execute(sa.text("UPDATE fabrica_collections SET settled = :number "
                                 "WHERE collection = :collection AND settled < :number"),
                         {"number": int(number), "collection": collection})
    if postgres:
        names = conn.execute(sa.text(
            "SELECT sequencename FROM pg_sequences WHERE schemaname = current_schema() "
            "AND sequencename LIKE 'fabrica\\_rev\\_%'")).scalars().all()
    else:
        names = conn.execute(sa.text(
            "SELECT table_name FROM information_schema.tables WHERE table_schema = "
            "DATABASE() AND table_type = 'SEQUENCE' AND table_name LIKE "
            "'fabrica\\_rev\\_%'")).scalars().all()
    for name in names:
        conn.execute(sa.text(f"DROP SEQUENCE {name}"))


def _exists(conn: sa.Connection, sequence: str) -> bool:
    if conn.dialect.name == "postgresql":
        query = sa.text("SELECT to_regclass(CAST(:name AS TEXT)) IS NOT NULL")
    else:
        query = sa.text("SELECT COUNT(*) > 0 FROM information_schema.tables WHERE "
                        "table_schema = DATABASE() AND table_name = :name "
                        "AND table_type = 'SEQUENCE'")
    return bool(conn.execute(query, {"name": sequence}).scalar())
