"""PostgreSQL plans of the lookups by uid, whatever the statistics say.

Statistics sampled while the tables held one resource make every column look unique (or,
for its labels, constant). With them, the planner found a uid through the (collection,
name) index, with the uid as a filter, and labels by a scan of the table: it read every
row of the collection, under the write's locks (measured: 27 ms per update and 3.5 ms per
label's foreign-key check at 10,000 rows, against 0.04 and 0.08 ms). Schema 0005 pins the
statistics that decide it (n_distinct of ``collection``, and of the labels' and snapshots'
``uid``), so the primary key is always the cheaper path.
"""

from __future__ import annotations

import pytest
from sqlalchemy import text

from fabrica.storage import SQLStorage
from tests._support.sqldb import database
from tests._support.storage import doc

# The statements that find one resource (or its labels) by uid: a get, the change log's
# version update, a delete, and what PostgreSQL runs for the labels' foreign key (the
# check on insert, the cascade on delete).
LOOKUPS = {
    "get": ("SELECT document FROM fabrica_resources WHERE collection = $1 AND uid = $2",
            "pk_fabrica_resources"),
    "delete": ("DELETE FROM fabrica_resources WHERE collection = $1 AND uid = $2 "
               "RETURNING document", "pk_fabrica_resources"),
    "foreign key check": ("SELECT 1 FROM ONLY fabrica_resources x WHERE collection = $1 "
                          "AND uid = $2 FOR KEY SHARE OF x", "pk_fabrica_resources"),
    "labels cascade": ("DELETE FROM ONLY fabrica_labels WHERE collection = $1 AND uid = $2",
                       "pk_fabrica_labels"),
    "versions cascade": ("DELETE FROM ONLY fabrica_versions WHERE collection = $1 "
                         "AND uid = $2", "pk_fabrica_versions"),
}


GROW = [
    "INSERT INTO fabrica_resources (collection, uid, name, resource_version, document) "
    "SELECT 'devices', 'dev-' || lpad(to_hex(n), 8, '0'), 'd-' || n, n, repeat('x', 400) "
    "FROM generate_series(1, 5000) AS n",
    "INSERT INTO fabrica_labels (collection, uid, key, value) "
    "SELECT 'devices', 'dev-' || lpad(to_hex(n), 8, '0'), key, 'v' FROM generate_series(1, 5000)"
    " AS n, unnest(ARRAY['group', 'rack', 'tier']) AS key",
    "INSERT INTO fabrica_versions (collection, uid, version_id, number, document) "
    "SELECT 'devices', 'dev-' || lpad(to_hex(n), 8, '0'), 'v1', 1, '{}' "
    "FROM generate_series(1, 5000) AS n",
]


@pytest.fixture
def url(tmp_path):
    with database("postgresql", tmp_path) as url:
        yield url


@pytest.fixture
async def storage(url):
    sql = SQLStorage(url)
    await sql.migrate()
    yield sql
    await sql.close()


async def test_lookups_by_uid_use_the_primary_key_after_statistics_of_one_row(storage):
    labels = {"group": "g1", "rack": "r1", "tier": "gold"}
    snapshot = {"versionId": "v1", "spec": {}}
    await storage.create("devices", doc("d-0", "dev-00000000", labels), snapshot)
    await _execute(storage, *(f"ANALYZE {table}" for table in (
        "fabrica_resources", "fabrica_labels", "fabrica_versions")))
    # The tables grow (as 5,000 creates would make them); the statistics stay.
    await _execute(storage, *GROW)

    for what, (statement, index) in LOOKUPS.items():
        plan = await _generic_plan(storage, statement)
        assert "Index Cond: (((collection)::text = ($1)::text) AND ((uid)::text" in plan \
            and index in plan, f"{what}: {plan}"


async def _execute(storage: SQLStorage, *statements: str) -> None:
    async with storage.engine.connect() as conn:
        conn = await conn.execution_options(isolation_level="AUTOCOMMIT")
        for statement in statements:
            await conn.execute(text(statement))


async def _generic_plan(storage: SQLStorage, statement: str) -> str:
    """The plan PostgreSQL caches for `statement` once it plans it without the values (as
    it does for a prepared statement run often: asyncpg prepares every statement)."""
    async with storage.engine.connect() as conn:
        await conn.execute(text("SET plan_cache_mode = force_generic_plan"))
        await conn.exec_driver_sql(f"PREPARE lookup(varchar, varchar) AS {statement}")
        rows = await conn.exec_driver_sql("EXPLAIN EXECUTE lookup('devices', 'dev-00000001')")
        plan = "\n".join(row[0] for row in rows)
        await conn.exec_driver_sql("DEALLOCATE lookup")
        await conn.rollback()
    return plan
