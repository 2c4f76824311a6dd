"""The transactional outbox: events recorded in their write's transaction, relayed later.

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-30
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import mysql

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "fabrica_outbox",
        sa.Column("seq", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), primary_key=True,
                  autoincrement=True),
        sa.Column("resource", sa.String(170), nullable=False),
        sa.Column("subject", sa.String(255), nullable=False),
        sa.Column("event_id", sa.String(200), nullable=False),
        sa.Column("payload", sa.Text().with_variant(mysql.LONGTEXT(), "mysql", "mariadb"),
                  nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True).with_variant(
            mysql.DATETIME(fsp=6), "mysql", "mariadb"), nullable=False),
        sqlite_autoincrement=True,
        mysql_engine="InnoDB", mysql_charset="utf8mb4",
        mariadb_engine="InnoDB", mariadb_charset="utf8mb4",
    )


def downgrade() -> None:
    op.drop_table("fabrica_outbox")
