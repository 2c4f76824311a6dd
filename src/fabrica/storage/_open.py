"""`open_storage`: a backend from what a user typed, a data directory or a database URL."""

from __future__ import annotations

import os
import re

from ._base import Storage
from ._file import FileStorage

__all__ = ["is_database_url", "open_storage"]

_URL = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*://|^file:")


def is_database_url(target: str | os.PathLike[str]) -> bool:
    """``sqlite:///x.db``, ``postgresql://...``, ``file:app.db``: anything but a plain path."""
    return isinstance(target, str) and bool(_URL.match(target))


def open_storage(target: str | os.PathLike[str], **engine_options: object) -> Storage:
    """`SQLStorage` for a database URL, `FileStorage` for a directory.

    A SQL schema is not migrated here: call ``await storage.migrate()`` (or
    ``check_schema()``) first, or run ``python -m PKG.server migrate``.
    """
    if not is_database_url(target):
        return FileStorage(target)
    from ._sql import SQLStorage  # SQLAlchemy costs import time the file backend never pays

    return SQLStorage(str(target), **engine_options)
