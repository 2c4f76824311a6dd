"""Storage backends: the `Storage` protocol and the file backend."""

from ._base import (
    AlreadyExists,
    Conflict,
    Document,
    NotFound,
    Storage,
    StorageError,
    Unavailable,
)
from ._file import FileStorage

__all__ = [
    "AlreadyExists",
    "Conflict",
    "Document",
    "FileStorage",
    "NotFound",
    "Storage",
    "StorageError",
    "Unavailable",
]
