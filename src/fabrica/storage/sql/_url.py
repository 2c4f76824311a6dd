"""Database URLs as users write them, turned into what SQLAlchemy's async engine needs.

Users give the usual URLs and never name a driver: ``sqlite:///path``,
``postgresql://user@host:5432/db`` (``postgres://`` too), ``mysql://user@host:3306/db`` or
``mariadb://...``, and Fabrica's own SQLite form ``file:data/app.db?_fk=1`` (the query
options of go-sqlite3 are ignored: foreign keys, WAL and a busy timeout are always on).
Choosing the driver is ours: asyncpg, aiomysql, and for SQLite Python's own sqlite3, which
`SQLStorage` runs in a worker thread (``sqlite+aiosqlite://`` is accepted and means the
same). An explicit PostgreSQL or MySQL driver that is already async is kept.

PostgreSQL's libpq ``options`` parameter (``?options=-c%20search_path%3Dmy_schema``) is
honoured: asyncpg has no such parameter, so each ``-c name=value`` becomes a server setting.
"""

from __future__ import annotations

import shlex
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy.engine import URL, make_url
from sqlalchemy.exc import ArgumentError

__all__ = ["DatabaseURL", "parse_database_url"]

_ASYNC_DRIVERS = {
    "sqlite": ("pysqlite",),
    "postgresql": ("asyncpg", "psycopg"),
    "mysql": ("aiomysql", "asyncmy"),
    "mariadb": ("aiomysql", "asyncmy"),
}
_BACKEND_ALIASES = {"postgres": "postgresql", "pgsql": "postgresql", "sqlite3": "sqlite"}
_CONNECT_TIMEOUT = 5  # seconds; a database that is down must fail a request, not hang it


@dataclass(frozen=True)
class DatabaseURL:
    """A normalised URL: the async SQLAlchemy URL and the driver's connect arguments."""

    url: URL
    connect_args: dict[str, Any] = field(default_factory=dict)

    @property
    def backend(self) -> str:
        """``sqlite``, ``postgresql``, ``mysql`` or ``mariadb``."""
        return self.url.get_backend_name()

    @property
    def is_sqlite(self) -> bool:
        return self.backend == "sqlite"

    def redacted(self) -> str:
        """The URL for logs: password hidden, driver shown."""
        return self.url.render_as_string(hide_password=True)


def parse_database_url(text: str) -> DatabaseURL:
    """Normalise `text`; `ValueError` says what is wrong with it."""
    text = text.strip()
    if text.startswith("file:"):
        return _sqlite(_fabrica_sqlite_path(text))
    try:
        url = make_url(text)
    except ArgumentError as exc:
        raise ValueError(f"not a database URL: {text!r} ({exc})") from None
    backend, _, driver = url.drivername.partition("+")
    backend = _BACKEND_ALIASES.get(backend, backend)
    if backend not in _ASYNC_DRIVERS:
        raise ValueError(
            f"unsupported database {backend!r} in {text!r}: use sqlite, postgresql or mysql"
        )
    if backend == "sqlite":
        return _sqlite(url.database or "")
    if driver not in _ASYNC_DRIVERS[backend]:
        driver = _ASYNC_DRIVERS[backend][0]
    url = url.set(drivername=f"{backend}+{driver}")
    if backend == "postgresql":
        return _postgresql(url)
    return _mysql(url)


def _fabrica_sqlite_path(text: str) -> str:
    path = text[len("file:"):].partition("?")[0]
    if path.startswith("//"):  # file:///abs/path.db, as in RFC 8089
        path = path[2:]
    return path


def _sqlite(path: str) -> DatabaseURL:
    if path in ("", ":memory:") or path.startswith("file::memory:"):
        raise ValueError(
            "an in-memory SQLite database would lose every resource at exit; "
            "give a file, e.g. sqlite:///data/app.db"
        )
    return DatabaseURL(URL.create("sqlite", database=path))


def _postgresql(url: URL) -> DatabaseURL:
    query = dict(url.query)
    connect_args: dict[str, Any] = {"timeout": _CONNECT_TIMEOUT}
    options = query.pop("options", None)
    if options is not None:
        if isinstance(options, tuple):
            options = " ".join(options)
        connect_args["server_settings"] = _libpq_options(options)
    return DatabaseURL(url.set(query=query), connect_args)


def _libpq_options(options: str) -> dict[str, str]:
    """``-c search_path=x -c work_mem=4MB`` (or ``--search_path=x``) as a dict."""
    settings: dict[str, str] = {}
    words = shlex.split(options)
    index = 0
    while index < len(words):
        word = words[index]
        if word == "-c" and index + 1 < len(words):
            index += 1
            word = words[index]
        elif word.startswith("-c"):
            word = word[2:]
        elif word.startswith("--"):
            word = word[2:]
        else:
            raise ValueError(f"unsupported PostgreSQL option {word!r}: use -c name=value")
        name, equals, value = word.partition("=")
        if not equals or not name:
            raise ValueError(f"PostgreSQL option {word!r} is not name=value")
        settings[name.replace("-", "_")] = value
        index += 1
    return settings


def _mysql(url: URL) -> DatabaseURL:
    query = dict(url.query)
    query.setdefault("charset", "utf8mb4")
    return DatabaseURL(url.set(query=query), {"connect_timeout": _CONNECT_TIMEOUT})
