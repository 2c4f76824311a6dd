"""Database URLs as users write them, `open_storage`, and the public face of fabrica.storage."""

from __future__ import annotations

import subprocess
import sys

import pytest

import fabrica.storage
from fabrica.storage import FileStorage, SQLStorage, is_database_url, open_storage
from fabrica.storage._sql_url import parse_database_url


@pytest.mark.parametrize(("given", "driver_url"), [
    ("sqlite:///data/app.db", "sqlite:///data/app.db"),
    ("sqlite:////abs/app.db", "sqlite:////abs/app.db"),
    ("sqlite+aiosqlite:///data/app.db", "sqlite:///data/app.db"),
    ("file:data/app.db?_fk=1", "sqlite:///data/app.db"),
    ("file:///abs/app.db?_fk=1&cache=shared", "sqlite:////abs/app.db"),
    ("postgresql://u@h:5432/db", "postgresql+asyncpg://u@h:5432/db"),
    ("postgres://u:secret@h/db", "postgresql+asyncpg://u:***@h/db"),
    ("postgresql+psycopg2://u@h/db", "postgresql+asyncpg://u@h/db"),
    ("mysql://root@h:3306/db", "mysql+aiomysql://root@h:3306/db?charset=utf8mb4"),
    ("mysql+pymysql://root@h/db?charset=latin1", "mysql+aiomysql://root@h/db?charset=latin1"),
    ("mariadb://root@h/db", "mariadb+aiomysql://root@h/db?charset=utf8mb4"),
])
def test_urls_get_an_async_driver_and_hide_passwords(given, driver_url):
    assert parse_database_url(given).redacted() == driver_url


def test_libpq_options_become_server_settings():
    url = "postgresql://u@h/db?options=-c%20search_path%3Dtenant_a%20-c%20work_mem%3D8MB"
    parsed = parse_database_url(url)
    assert parsed.connect_args["server_settings"] == {"search_path": "tenant_a",
                                                      "work_mem": "8MB"}
    assert "options" not in parsed.redacted()


@pytest.mark.parametrize(("given", "problem"), [
    ("oracle://x@h/db", "unsupported database 'oracle'"),
    ("sqlite://", "in-memory"),
    ("sqlite:///:memory:", "in-memory"),
    ("not a url", "not a database URL"),
    ("postgresql://u@h/db?options=search_path%3Dx", "use -c name=value"),
])
def test_bad_urls_say_what_is_wrong(given, problem):
    with pytest.raises(ValueError, match=problem):
        parse_database_url(given)


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
