"""Which resource classes a client knows, looked up by class or by name.

Scripts pass the class (``client.get(Device, "web-01")``) and get typed objects back; the
command line only has the word the user typed (``device``), so names resolve here too.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from ..resource import Resource

__all__ = ["KindRef", "Kinds"]

KindRef = type[Resource[Any, Any]] | str


class Kinds:
    """The kinds a client was built with, indexed by kind, lower-case kind and plural."""

    def __init__(self, kinds: Iterable[type[Resource[Any, Any]]] = ()) -> None:
        self.classes = list(kinds)
        self._by_name: dict[str, type[Resource[Any, Any]]] = {}
        for cls in self.classes:
            info = cls.resource_info
            for key in (info.singular, info.plural):
                self._by_name[key] = cls

    def resolve(self, kind: KindRef) -> type[Resource[Any, Any]]:
        """The class for `kind`; a class is taken as is, even one not registered."""
        if not isinstance(kind, str):
            return kind
        try:
            return self._by_name[kind.lower()]
        except KeyError:
            known = ", ".join(sorted(c.resource_info.singular for c in self.classes)) or "none"
            raise ValueError(f"unknown kind {kind!r}; this client knows: {known}") from None
