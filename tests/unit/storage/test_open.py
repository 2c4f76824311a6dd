"""Opening storage as a service is configured: `database_url_for`, `prepare_storage` and
`migrate_database` (the decisions the generated ``serve`` and ``migrate`` commands use)."""

from __future__ import annotations

import asyncio

import pytest

from fabrica.storage import (
    DatabaseURLRequired,
    FileStorage,
    SQLStorage,
    StorageSetupError,
    database_url_for,
    migrate_database,
    prepare_storage,
)


def url_for(tmp_path, storage_type="file", db_driver="sqlite", database_url=None):
    return database_url_for(storage_type=storage_type, db_driver=db_driver,
                            data_dir=tmp_path / "data", database_url=database_url,
                            sqlite_name="device_api")


def test_the_backend_a_project_gets(tmp_path):
    assert url_for(tmp_path) is None  # files
    assert url_for(tmp_path, "sql") == f"sqlite:///{tmp_path.resolve()}/data/device_api.db"
    assert url_for(tmp_path, database_url="mysql://u@h/db") == "mysql://u@h/db"  # given wins
    with pytest.raises(DatabaseURLRequired) as refused:
        url_for(tmp_path, "sql", "postgres")
    assert refused.value.usage and refused.value.driver == "postgres"
    assert refused.value.example.startswith("postgresql://")


def test_files_need_no_preparation(tmp_path):
    storage = prepare_storage(tmp_path / "data", None)
    assert isinstance(storage, FileStorage) and (tmp_path / "data").is_dir()
    asyncio.run(storage.close())


def test_sqlite_is_migrated_by_default_and_checked_otherwise(tmp_path):
    fresh = f"sqlite:///{tmp_path}/fresh.db"
    with pytest.raises(StorageSetupError, match="run `PKG migrate`") as refused:
        prepare_storage(tmp_path, fresh, auto_migrate=False, migrate_command="PKG migrate")
    assert not refused.value.usage
    storage = prepare_storage(tmp_path, fresh)  # SQLite: auto-migrate unless told not to
    assert isinstance(storage, SQLStorage)
    asyncio.run(storage.close())
    checked = prepare_storage(tmp_path, fresh, auto_migrate=False)
    asyncio.run(checked.close())
    shown, before, after = migrate_database(fresh)
    assert before == after and shown.startswith("sqlite:///")


def test_a_bad_url_is_a_usage_error(tmp_path):
    with pytest.raises(StorageSetupError, match="unsupported database 'oracle'") as refused:
        prepare_storage(tmp_path, "oracle://x@y/z")
    assert refused.value.usage


@pytest.mark.parametrize("database", [False, True])
def test_the_change_history_reaches_the_backend(tmp_path, database):
    """`serve --watch-history N` passes N here: the log keeps about N changes."""
    url = f"sqlite:///{tmp_path}/history.db" if database else None
    storage = prepare_storage(tmp_path / "data", url, change_history=3)

    async def write_and_look() -> tuple[int, int]:
        try:
            current = await storage.create("devices", {
                "apiVersion": "v1", "kind": "Device",
                "metadata": {"name": "a", "uid": "dev-0000000a", "resourceVersion": ""},
                "spec": {}, "status": {}})
            for n in range(10):
                current = await storage.update("devices", {**current, "spec": {"n": n}},
                                               current["metadata"]["resourceVersion"])
            return await storage.horizon("devices"), await storage.latest("devices")
        finally:
            await storage.close()

    horizon, latest = asyncio.run(write_and_look())
    assert horizon == latest - 3
