"""`SQLStorage`'s connection pool on PostgreSQL: busy, it keeps its connections (SQLAlchemy's
default of 5 kept + 10 overflow closed on return made a service with 32 operations in
flight connect and disconnect for nearly each one); idle, a dead connection is found by a
ping before use and replaced."""

from __future__ import annotations

import asyncio
from urllib.parse import quote

import pytest
from sqlalchemy import text

import fabrica.storage.sql._storage as sql_module
from fabrica.storage import SQLStorage
from tests._support.sqldb import postgres_schema


@pytest.fixture
def tagged(tmp_path):
    """A URL whose connections carry an application_name of this test's own."""
    tag = f"fabrica-pool-{tmp_path.name}"[:60]
    with postgres_schema() as url:
        yield url + quote(f" -capplication_name={tag}"), tag


async def backends(admin: SQLStorage, tag: str) -> set[int]:
    def query(conn):
        return {row[0] for row in conn.execute(text(
            f"SELECT pid FROM pg_stat_activity WHERE application_name = '{tag}'")).all()}
    return await admin._run(query)


def doc(n: int) -> dict:
    return {"apiVersion": "v1", "kind": "Device",
            "metadata": {"name": f"d{n}", "uid": f"dev-{n:08x}", "resourceVersion": ""},
            "spec": {}, "status": {}}


async def test_a_busy_storage_keeps_its_connections(tagged):
    url, tag = tagged
    admin, storage = SQLStorage(url.split("%20-capplication_name")[0]), SQLStorage(url)
    try:
        await storage.migrate()
        await asyncio.gather(*(storage.create("devices", doc(n)) for n in range(40)))
        first = await backends(admin, tag)
        await asyncio.gather(*(storage.get("devices", f"dev-{n:08x}") for n in range(40)))
        assert 5 < len(first) <= 15
        assert await backends(admin, tag) == first  # the same connections, none new
    finally:
        await storage.close()
        await admin.close()


async def test_a_connection_killed_while_idle_is_replaced(tagged, monkeypatch):
    monkeypatch.setattr(sql_module, "_PING_AFTER_IDLE", 0.0)  # "idle for a while": now
    url, tag = tagged
    admin, storage = SQLStorage(url.split("%20-capplication_name")[0]), SQLStorage(url)
    try:
        await storage.migrate()
        created = await storage.create("devices", doc(1))
        victims = await backends(admin, tag)
        await admin._run(lambda conn: conn.execute(text(
            f"SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
            f"WHERE application_name = '{tag}'")).all(), write=True)
        assert await storage.get("devices", "dev-00000001") == created
        assert not await backends(admin, tag) & victims
    finally:
        await storage.close()
        await admin.close()
