"""Opening storage as a service is configured: `database_url_for`, `prepare_storage` and
`migrate_database` (the decisions the generated ``serve`` and ``migrate`` commands use),
`open_storage`, and the public face of fabrica.storage."""

from __future__ import annotations

import asyncio
import subprocess
import sys

import pytest

import fabrica.storage
from fabrica.storage import (
    DatabaseURLRequired,
    FileStorage,
    SQLStorage,
    StorageSetupError,
    database_url_for,
    is_database_url,
    migrate_database,
    open_storage,
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


async def test_open_storage_picks_the_backend(tmp_path):
    assert not is_database_url(tmp_path) and not is_database_url("./data")
    assert isinstance(open_storage(tmp_path / "data"), FileStorage)
    for url in (f"sqlite:///{tmp_path}/a.db", f"file:{tmp_path}/b.db?_fk=1"):
        storage = open_storage(url)
        assert isinstance(storage, SQLStorage) and storage.name == "sqlite"
        await storage.close()
    assert (tmp_path / "a.db").parent.is_dir()


def test_public_names_and_no_sqlalchemy_for_the_file_backend():
    for name in fabrica.storage.__all__:
        assert getattr(fabrica.storage, name) is not None
    with pytest.raises(AttributeError):
        fabrica.storage.NoSuchThing  # noqa: B018
    code = ("import sys, fabrica, fabrica.storage, fabrica.server, fabrica.client; "
            "assert 'sqlalchemy' not in sys.modules, 'imported eagerly'")
    subprocess.run([sys.executable, "-c", code], check=True, timeout=60)
