"""The change log (watch): per-collection revision rows and the log of changes.

Existing collections get a row whose horizon is their largest resourceVersion (a watch
from an older version gets 410: those changes were never logged) and whose revision is the
database's revision counter, so versions taken from now on stay above every version ever
handed out, deleted resources' included.

From this schema on, a resource's version is kept in its row's ``resource_version`` column
only: a write stores its document with an empty ``metadata.resourceVersion`` (it learns its
version last, see `sql._ops`) and readers take the column's. Rows written before still hold
their version in their JSON too; the column wins. Downgrading puts the versions back into
the documents, where the earlier releases read them.

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-30
"""

from __future__ import annotations

import json
from typing import Any

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import mysql

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None

_MYSQL: dict[str, Any] = {"mysql_engine": "InnoDB", "mysql_charset": "utf8mb4",
                          "mariadb_engine": "InnoDB", "mariadb_charset": "utf8mb4"}


def _key(length: int) -> sa.types.TypeEngine[str]:
    exact = mysql.VARCHAR(length, charset="utf8mb4", collation="utf8mb4_bin")
    return (sa.String(length)
            .with_variant(sa.String(length, collation="C"), "postgresql")
            .with_variant(exact, "mysql", "mariadb"))


def upgrade() -> None:
    op.create_table(
        "fabrica_collections",
        sa.Column("collection", _key(63), nullable=False),
        sa.Column("revision", sa.BigInteger(), nullable=False),
        sa.Column("horizon", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("collection", name="pk_fabrica_collections"),
        **_MYSQL,
    )
    op.create_table(
        "fabrica_changes",
        sa.Column("collection", _key(63), nullable=False),
        sa.Column("revision", sa.BigInteger(), nullable=False),
        sa.Column("uid", _key(100), nullable=False),
        sa.Column("type", sa.String(10), nullable=False),
        sa.Column("document", sa.Text().with_variant(mysql.LONGTEXT(), "mysql", "mariadb"),
                  nullable=False),
        sa.PrimaryKeyConstraint("collection", "revision", name="pk_fabrica_changes"),
        **_MYSQL,
    )
    conn = op.get_bind()
    if conn.dialect.name == "postgresql":
        counter = conn.execute(sa.text(
            "SELECT last_value FROM pg_sequences WHERE schemaname = current_schema() "
            "AND sequencename = 'fabrica_revisions_id_seq'")).scalar()
    else:
        counter = conn.execute(sa.text("SELECT MAX(id) FROM fabrica_revisions")).scalar()
    conn.execute(sa.text(
        "INSERT INTO fabrica_collections (collection, revision, horizon) "
        "SELECT collection, MAX(resource_version), MAX(resource_version) "
        "FROM fabrica_resources GROUP BY collection"))
    conn.execute(sa.text("UPDATE fabrica_collections SET revision = :counter "
                         "WHERE revision < :counter"), {"counter": int(counter or 0)})


def downgrade() -> None:
    op.drop_table("fabrica_changes")
    op.drop_table("fabrica_collections")
    _versions_into_documents(op.get_bind())


_BATCH = 500


def _versions_into_documents(conn: sa.Connection) -> None:
    """Write each row's version into its document's ``metadata.resourceVersion``."""
    table = sa.table("fabrica_resources", sa.column("collection"), sa.column("uid"),
                     sa.column("resource_version"), sa.column("document"))
    query = (sa.select(table.c.collection, table.c.uid, table.c.resource_version,
                       table.c.document)
             .order_by(table.c.collection, table.c.uid).limit(_BATCH))
    after: tuple[str, str] | None = None
    while True:
        page = query if after is None else query.where(
            sa.tuple_(table.c.collection, table.c.uid) > sa.tuple_(*after))
        rows = conn.execute(page).all()
        for row in rows:
            document = json.loads(row.document)
            version = str(row.resource_version)
            if document.get("metadata", {}).get("resourceVersion") != version:
                document["metadata"]["resourceVersion"] = version
                conn.execute(sa.update(table).where(
                    table.c.collection == row.collection, table.c.uid == row.uid,
                ).values(document=json.dumps(document, separators=(",", ":"))))
        if len(rows) < _BATCH:
            return
        after = (rows[-1].collection, rows[-1].uid)
