"""The backends every contract test runs on: file, SQLite, PostgreSQL, MariaDB.

`storage` is a fresh, empty storage of each backend in turn; `open_backend` opens another
one on the same place with other options (a shorter change history...).
"""

from __future__ import annotations

import pytest
from sqlalchemy import delete

from fabrica.storage import FileStorage, SQLStorage
from fabrica.storage.sql._schema import (
    changes,
    collections,
    indexed_fields,
    resources,
    revisions,
    unique_constraints,
    unique_keys,
)
from tests._support.sqldb import migrate, mysql_database, postgres_schema

BACKENDS = ("file", "sqlite", "postgresql", "mariadb")


@pytest.fixture(scope="session")
def sqlite_url(tmp_path_factory):
    url = f"sqlite:///{tmp_path_factory.mktemp('contract')}/contract.db"
    migrate(url)
    return url


@pytest.fixture(scope="session")
def postgresql_url():
    with postgres_schema() as url:
        migrate(url)
        yield url


@pytest.fixture(scope="session")
def mariadb_url():
    with mysql_database() as url:
        migrate(url)
        yield url


@pytest.fixture(params=BACKENDS)
def backend_url(request):
    """The session's migrated database of the backend (None for the file backend)."""
    return None if request.param == "file" else request.getfixturevalue(f"{request.param}_url")


def _empty(conn):
    """Each test starts with no resources (labels and versions go with them)."""
    conn.execute(delete(unique_keys))
    conn.execute(delete(unique_constraints))
    conn.execute(delete(indexed_fields))
    conn.execute(delete(resources))
    conn.execute(delete(revisions))
    conn.execute(delete(changes))
    conn.execute(delete(collections))


@pytest.fixture
async def open_backend(backend_url, tmp_path):
    """`open_backend(**options)`: a storage of the backend on the test's empty place."""
    opened = []

    async def open_(**options):
        if backend_url is None:
            storage = FileStorage(tmp_path, **options)
        else:
            storage = SQLStorage(backend_url, **options)
            if not opened:
                await storage._run(_empty, write=True)
        opened.append(storage)
        return storage

    yield open_
    for storage in opened:
        await storage.close()


@pytest.fixture
async def storage(open_backend):
    return await open_backend()
