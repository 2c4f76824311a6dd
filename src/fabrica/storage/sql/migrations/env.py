"""Alembic environment of fabrica's SQL storage.

`fabrica.storage` runs the migrations itself (``python -m PKG.server migrate``, or at start
with ``--auto-migrate``) and hands this script an open connection in
``config.attributes["connection"]``. The version table is ``fabrica_alembic_version``, so a
database that also holds the user's own alembic-managed tables keeps the two apart.
"""

from __future__ import annotations

from alembic import context

VERSION_TABLE = "fabrica_alembic_version"

connection = context.config.attributes.get("connection")
if connection is None:
    raise RuntimeError(
        "fabrica's migrations run through fabrica: `python -m PKG.server migrate "
        "--database-url URL`, or fabrica.storage.SQLStorage(url).migrate()"
    )
context.configure(connection=connection, version_table=VERSION_TABLE)
with context.begin_transaction():
    context.run_migrations()
