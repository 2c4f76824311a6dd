"""Unique keys: the values a kind's unique constraints hold, enforced by a primary key.

``fabrica_unique`` holds one row per (collection, constraint, key) with the uid holding it;
the key is the SHA-256 of the value's canonical form (a fixed 64 characters, whatever the
value's length), and the primary key makes a second holder a constraint violation in the
write's own transaction: concurrent writers of one value, in any process, cannot both
commit. Rows go with their resource (ON DELETE CASCADE). ``fabrica_unique_constraints``
records which constraints have had their keys built from the stored resources (at start,
see `SQLStorage.prepare_unique`). Existing databases get both tables empty: a kind's
constraints are built when a service declaring them first starts.

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-10
"""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import mysql

revision = "0006"
down_revision = "0005"
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
        "fabrica_unique",
        sa.Column("collection", _key(63), nullable=False),
        sa.Column("constraint_name", _key(255), nullable=False),
        sa.Column("key_hash", _key(64), nullable=False),
        sa.Column("uid", _key(100), nullable=False),
        sa.PrimaryKeyConstraint("collection", "constraint_name", "key_hash",
                                name="pk_fabrica_unique"),
        sa.ForeignKeyConstraint(
            ["collection", "uid"], ["fabrica_resources.collection", "fabrica_resources.uid"],
            ondelete="CASCADE", name="fk_fabrica_unique_resource"),
        sa.Index("ix_fabrica_unique_holder", "collection", "uid"),
        **_MYSQL,
    )
    op.create_table(
        "fabrica_unique_constraints",
        sa.Column("collection", _key(63), nullable=False),
        sa.Column("constraint_name", _key(255), nullable=False),
        sa.PrimaryKeyConstraint("collection", "constraint_name",
                                name="pk_fabrica_unique_constraints"),
        **_MYSQL,
    )


def downgrade() -> None:
    op.drop_table("fabrica_unique_constraints")
    op.drop_table("fabrica_unique")
