"""Which resource classes a client knows, looked up by class or by name.

Scripts pass the class (``client.get(Device, "web-01")``) and get typed objects back; the
command line only has the word the user typed (``device``), so names resolve here too.

A client may also speak another API version of a kind: name its `ServedVersion` class
(``client.get(DeviceV1, "web-01")``), or give the client ``api_version="v1"`` and the
`ServedVersion` classes it should know (``versions=``); results are then objects of the
served class, and requests carry ``version=v1`` in Accept and Content-Type.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from ..resource import Resource, ResourceInfo, ServedVersion

__all__ = ["KindRef", "Kinds"]

# A kind's class, a ServedVersion class, or a kind's name (typed loosely: the typed clients
# pass their own type variables through).
KindRef = type[Any] | str


class Kinds:
    """The kinds a client was built with, indexed by kind, lower-case kind and plural, with
    the API version it speaks (None: each kind's default) and the versions it knows."""

    def __init__(
        self,
        kinds: Iterable[type[Resource[Any, Any]]] = (),
        versions: Iterable[type[ServedVersion[Any, Any]]] = (),
        api_version: str | None = None,
    ) -> None:
        self.classes = list(kinds)
        self.api_version = api_version
        self._by_name: dict[str, type[Resource[Any, Any]]] = {}
        for cls in self.classes:
            info = cls.resource_info
            for key in (info.singular, info.plural):
                self._by_name[key] = cls
        self._served = {(v.version_info.kind, v.version_info.version): v for v in versions}

    def resolve(self, kind: KindRef) -> Any:
        """The class results of `kind` validate as: a `ServedVersion` class as is; a kind (or
        its name) becomes its served class for the client's api_version, when known."""
        if isinstance(kind, type) and issubclass(kind, ServedVersion):
            return kind
        cls = self.storage(kind)
        if self.api_version is not None and self.api_version != cls.resource_info.version:
            return self._served.get((cls, self.api_version), cls)
        return cls

    def storage(self, kind: KindRef) -> type[Resource[Any, Any]]:
        """The kind itself (its storage version's class); a class is taken as is, even one
        not registered."""
        if isinstance(kind, type) and issubclass(kind, ServedVersion):
            return kind.version_info.kind
        if not isinstance(kind, str):
            return kind
        try:
            return self._by_name[kind.lower()]
        except KeyError:
            known = ", ".join(sorted(c.resource_info.singular for c in self.classes)) or "none"
            raise ValueError(f"unknown kind {kind!r}; this client knows: {known}") from None

    def info(self, kind: KindRef) -> ResourceInfo:
        return self.storage(kind).resource_info

    def version(self, kind: KindRef) -> str | None:
        """The API version to ask for: a served class's own, else the client's (or None)."""
        if isinstance(kind, type) and issubclass(kind, ServedVersion):
            return kind.version_info.version
        return self.api_version
