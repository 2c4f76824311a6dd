"""Database URLs as users write them: an async driver, libpq options, clear errors."""

from __future__ import annotations

import pytest

from fabrica.storage.sql._url import parse_database_url


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
