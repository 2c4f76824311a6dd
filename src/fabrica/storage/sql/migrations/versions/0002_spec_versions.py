"""Spec history of versioned kinds, and an index for label selectors.

``fabrica_versions`` keeps the spec snapshots that ``GET /PLURAL/{id}/versions`` lists; they
go with their resource (ON DELETE CASCADE). ``ix_fabrica_labels_selector`` lets a selective
selector (``rack=r7`` among 100,000 resources) start from the few matching labels instead
of walking the collection in name order.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-25
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import mysql

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def _key(length: int) -> sa.types.TypeEngine[str]:
    exact = mysql.VARCHAR(length, charset="utf8mb4", collation="utf8mb4_bin")
    return (sa.String(length)
            .with_variant(sa.String(length, collation="C"), "postgresql")
            .with_variant(exact, "mysql", "mariadb"))


def upgrade() -> None:
    op.create_table(
        "fabrica_versions",
        sa.Column("collection", _key(63), nullable=False),
        sa.Column("uid", _key(100), nullable=False),
        sa.Column("version_id", _key(20), nullable=False),
        sa.Column("number", sa.BigInteger, nullable=False),
        sa.Column("document", sa.Text().with_variant(mysql.LONGTEXT(), "mysql", "mariadb"),
                  nullable=False),
        sa.PrimaryKeyConstraint("collection", "uid", "version_id", name="pk_fabrica_versions"),
        sa.ForeignKeyConstraint(
            ["collection", "uid"], ["fabrica_resources.collection", "fabrica_resources.uid"],
            ondelete="CASCADE", name="fk_fabrica_versions_resource",
        ),
        mysql_engine="InnoDB", mysql_charset="utf8mb4",
        mariadb_engine="InnoDB", mariadb_charset="utf8mb4",
    )
    op.create_index("ix_fabrica_labels_selector", "fabrica_labels",
                    ["collection", "key", "value"])


def downgrade() -> None:
    op.drop_index("ix_fabrica_labels_selector", table_name="fabrica_labels")
    op.drop_table("fabrica_versions")
