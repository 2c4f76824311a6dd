"""Valid Unicode text: what may reach storage, logs and events.

JSON can spell a lone UTF-16 surrogate (``"\\ud800"``) and Python's `json` decodes it into a
`str` that no UTF-8 encoder accepts: PostgreSQL and MariaDB refuse it (after the row is
written, on some paths), pydantic cannot serialise it, and an event carrying it breaks every
stream. So every string a client sends, keys included, is checked on the way in, and the
store checks every document it writes, whoever wrote it.
"""

from __future__ import annotations

from typing import Any

from pydantic_core import PydanticSerializationError, to_json

__all__ = ["InvalidText", "check_text", "invalid_text_path"]


class InvalidText(ValueError):
    """A string holds a lone surrogate: it is not text any encoder can write."""

    def __init__(self, path: str) -> None:
        super().__init__(f"{path or 'the value'}: not valid Unicode text (a lone surrogate)")
        self.path = path


def invalid_text_path(value: Any, prefix: str = "") -> str | None:
    """The JSON path (``spec.tags.x``) of the first string or key that is not valid Unicode
    text, or None when all are. Cheap on valid input: one encode of the whole to UTF-8 by
    pydantic-core (a lone surrogate fails it), several times faster than `json`'s; on any
    failure the walk decides."""
    try:
        to_json(value)
        return None
    except (PydanticSerializationError, ValueError, RecursionError):
        return _find(value, prefix)  # a bad string, or not plain JSON: walk it


def check_text(value: Any, prefix: str = "") -> None:
    """Raise `InvalidText` naming the first bad string's path."""
    path = invalid_text_path(value, prefix)
    if path is not None:
        raise InvalidText(path)


def _bad(text: str) -> bool:
    try:
        text.encode("utf-8")
        return False
    except UnicodeEncodeError:
        return True


def _join(prefix: str, key: object) -> str:
    return f"{prefix}.{key}" if prefix else str(key)


def _find(value: Any, prefix: str) -> str | None:
    stack: list[tuple[Any, str]] = [(value, prefix)]
    while stack:
        item, path = stack.pop()
        if isinstance(item, str):
            if _bad(item):
                return path
        elif isinstance(item, dict):
            for key, child in item.items():
                if isinstance(key, str) and _bad(key):
                    return _join(path, key.encode("utf-8", "backslashreplace").decode())
                stack.append((child, _join(path, key)))
        elif isinstance(item, list | tuple):
            stack.extend((child, _join(path, index)) for index, child in enumerate(item))
    return None
