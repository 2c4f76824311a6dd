"""Real databases for the SQL tests, each test run in a place of its own.

PostgreSQL (127.0.0.1:5432, database ``test``) gets a randomly named schema, reached through
``?options=-csearch_path=...`` (or, with `postgres_database`, a database of its own);
MariaDB (127.0.0.1:3306) a randomly named database. All are dropped when the run ends.
`.ci/run` starts the servers when they are down; set ``FABRICA_TEST_POSTGRES_URL`` /
``FABRICA_TEST_MYSQL_URL`` to use others. A server that is not there fails the tests that
need it (never a silent skip).
"""

from __future__ import annotations

import asyncio
import os
import secrets
from collections.abc import Iterator
from contextlib import contextmanager
from urllib.parse import quote

import pytest

POSTGRES_URL = os.environ.get("FABRICA_TEST_POSTGRES_URL",
                              "postgresql://postgres@127.0.0.1:5432/test")
MYSQL_URL = os.environ.get("FABRICA_TEST_MYSQL_URL", "mysql://root@127.0.0.1:3306/test")
SQL_BACKENDS = ("sqlite", "postgresql", "mariadb")


def _run(statements: list[str], url: str) -> None:
    from sqlalchemy import text

    from fabrica.storage import SQLStorage

    async def go() -> None:
        storage = SQLStorage(url)
        try:
            async with storage.engine.connect() as conn:
                conn = await conn.execution_options(isolation_level="AUTOCOMMIT")
                for statement in statements:
                    await conn.execute(text(statement))
        finally:
            await storage.close()

    try:
        asyncio.run(go())
    except Exception as exc:  # a server that is down: say which and how to start it
        pytest.fail(f"cannot prepare a test database at {url}: {exc}\n"
                    "(is the server running? .ci/run starts it)", pytrace=False)


@contextmanager
def postgres_schema() -> Iterator[str]:
    """A fresh schema; yields a URL whose connections use it."""
    schema = f"fabrica_test_{secrets.token_hex(4)}"
    _run([f"CREATE SCHEMA {schema}"], POSTGRES_URL)
    separator = "&" if "?" in POSTGRES_URL else "?"
    try:
        yield f"{POSTGRES_URL}{separator}options={quote(f'-csearch_path={schema}')}"
    finally:
        _run([f"DROP SCHEMA IF EXISTS {schema} CASCADE"], POSTGRES_URL)


@contextmanager
def postgres_database() -> Iterator[str]:
    """A fresh database of its own on the PostgreSQL server (for a test that must own the
    whole database, e.g. one whose writer is killed mid-transaction); yields its URL. It is
    dropped with whatever sessions a killed process left on it."""
    name = f"fabrica_test_{secrets.token_hex(4)}"
    _run([f"CREATE DATABASE {name}"], POSTGRES_URL)
    base, _, query = POSTGRES_URL.partition("?")
    try:
        yield f"{base.rsplit('/', 1)[0]}/{name}" + (f"?{query}" if query else "")
    finally:
        _run([f"DROP DATABASE IF EXISTS {name} WITH (FORCE)"], POSTGRES_URL)


@contextmanager
def mysql_database() -> Iterator[str]:
    """A fresh database on the MariaDB server; yields its URL."""
    name = f"fabrica_test_{secrets.token_hex(4)}"
    _run([f"CREATE DATABASE {name} CHARACTER SET utf8mb4"], MYSQL_URL)
    base = MYSQL_URL.rsplit("/", 1)[0]
    try:
        yield f"{base}/{name}"
    finally:
        _run([f"DROP DATABASE IF EXISTS {name}"], MYSQL_URL)


@contextmanager
def database(backend: str, tmp_dir: os.PathLike[str] | str) -> Iterator[str]:
    """An empty database of `backend` (``sqlite``, ``postgresql``, ``mariadb``)."""
    if backend == "sqlite":
        yield f"sqlite:///{os.fspath(tmp_dir)}/fabrica-test.db"
    elif backend == "postgresql":
        with postgres_schema() as url:
            yield url
    elif backend == "mariadb":
        with mysql_database() as url:
            yield url
    else:  # pragma: no cover
        raise ValueError(backend)


def migrate(url: str) -> None:
    from fabrica.storage import SQLStorage

    async def go() -> None:
        storage = SQLStorage(url)
        try:
            await storage.migrate()
        finally:
            await storage.close()

    asyncio.run(go())
