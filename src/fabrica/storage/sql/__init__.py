"""The SQL backend: SQLite, PostgreSQL and MariaDB/MySQL through SQLAlchemy, its schema made
by the alembic revisions in ``migrations/`` (shipped in the package). Importing it loads
SQLAlchemy: `fabrica.storage` imports it only when a SQL name is first used."""

from ._leases import SQLLeases
from ._migrate import MigrationRequired
from ._storage import SQLStorage

__all__ = ["MigrationRequired", "SQLLeases", "SQLStorage"]
