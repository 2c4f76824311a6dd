"""Initial schema: resources, their labels, and the revision counter.

Revision ID: 0001
Revises:
Create Date: 2026-11-25
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import mysql

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None

_MYSQL: dict[str, Any] = {"mysql_engine": "InnoDB", "mysql_charset": "utf8mb4",
          "mariadb_engine": "InnoDB", "mariadb_charset": "utf8mb4"}


def _key(length: int) -> sa.types.TypeEngine[str]:
    exact = mysql.VARCHAR(length, charset="utf8mb4", collation="utf8mb4_bin")
    return (sa.String(length)
            .with_variant(sa.String(length, collation="C"), "postgresql")
            .with_variant(exact, "mysql", "mariadb"))


def _timestamp() -> sa.types.TypeEngine[datetime]:
    return sa.DateTime(timezone=True).with_variant(mysql.DATETIME(fsp=6), "mysql", "mariadb")


def upgrade() -> None:
    op.create_table(
        "fabrica_resources",
        sa.Column("collection", _key(63), nullable=False),
        sa.Column("uid", _key(100), nullable=False),
        sa.Column("name", _key(253), nullable=False),
        sa.Column("kind", sa.String(100)),
        sa.Column("resource_version", sa.BigInteger, nullable=False),
        sa.Column("generation", sa.BigInteger),
        sa.Column("created_at", _timestamp()),
        sa.Column("updated_at", _timestamp()),
        sa.Column("deletion_timestamp", _timestamp()),
        sa.Column("document", sa.Text().with_variant(mysql.LONGTEXT(), "mysql", "mariadb"),
                  nullable=False),
        sa.PrimaryKeyConstraint("collection", "uid", name="pk_fabrica_resources"),
        sa.UniqueConstraint("collection", "name", name="uq_fabrica_resources_name"),
        **_MYSQL,
    )
    op.create_table(
        "fabrica_labels",
        sa.Column("collection", _key(63), nullable=False),
        sa.Column("uid", _key(100), nullable=False),
        sa.Column("key", _key(317), nullable=False),
        sa.Column("value", _key(63), nullable=False),
        sa.PrimaryKeyConstraint("collection", "uid", "key", name="pk_fabrica_labels"),
        sa.ForeignKeyConstraint(
            ["collection", "uid"], ["fabrica_resources.collection", "fabrica_resources.uid"],
            ondelete="CASCADE", name="fk_fabrica_labels_resource",
        ),
        **_MYSQL,
    )
    op.create_table(
        "fabrica_revisions",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
                  primary_key=True, autoincrement=True),
        sqlite_autoincrement=True,
        **_MYSQL,
    )


def downgrade() -> None:
    op.drop_table("fabrica_revisions")
    op.drop_table("fabrica_labels")
    op.drop_table("fabrica_resources")
