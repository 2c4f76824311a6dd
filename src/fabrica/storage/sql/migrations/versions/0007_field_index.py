"""Field index: the values of kinds' selectable fields, for ``?fieldSelector=``.

``fabrica_field_index`` holds one row per (resource, field) with the SHA-256 of the value's
text, written in the resource's write transaction; its index on (collection, field,
value_hash) answers "which resources hold this value". Rows go with their resource (ON
DELETE CASCADE). ``fabrica_indexed_fields`` records which fields have had their rows built
from the stored resources. Which fields a kind selects by is known to the service, not to
the migration, so existing resources are indexed when a service declaring the fields first
starts (`SQLStorage.prepare_fields`), not here.

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-07
"""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import mysql

revision = "0007"
down_revision = "0006"
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
        "fabrica_field_index",
        sa.Column("collection", _key(63), nullable=False),
        sa.Column("field", _key(255), nullable=False),
        sa.Column("value_hash", _key(64), nullable=False),
        sa.Column("uid", _key(100), nullable=False),
        sa.PrimaryKeyConstraint("collection", "field", "uid", name="pk_fabrica_field_index"),
        sa.ForeignKeyConstraint(
            ["collection", "uid"], ["fabrica_resources.collection", "fabrica_resources.uid"],
            ondelete="CASCADE", name="fk_fabrica_field_index_resource"),
        sa.Index("ix_fabrica_field_index_value", "collection", "field", "value_hash"),
        sa.Index("ix_fabrica_field_index_holder", "collection", "uid"),
        **_MYSQL,
    )
    op.create_table(
        "fabrica_indexed_fields",
        sa.Column("collection", _key(63), nullable=False),
        sa.Column("field", _key(255), nullable=False),
        sa.PrimaryKeyConstraint("collection", "field", name="pk_fabrica_indexed_fields"),
        **_MYSQL,
    )


def downgrade() -> None:
    op.drop_table("fabrica_indexed_fields")
    op.drop_table("fabrica_field_index")
