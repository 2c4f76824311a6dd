"""The REST surface of one kind, as data: which method on which path runs which operation.

The router (`KindEndpoints.routes`) and the OpenAPI document (`build_openapi`) are both
built from this table, so a path or a parameter name cannot differ between what is served
and what is documented.
"""

from __future__ import annotations

from dataclasses import dataclass

from ...resource import ResourceInfo, Verb

__all__ = ["ID_PARAM", "VERSION_PARAM", "Operation", "kind_operations", "offered_operations"]

ID_PARAM = "id"
VERSION_PARAM = "versionId"


@dataclass(frozen=True)
class Operation:
    """`name` is the handler's name in `KindEndpoints` and the OpenAPI operation's key;
    `verbs` the verbs of ``verbs=`` that it serves (any one of them keeps it offered)."""

    name: str
    method: str
    path: str
    verbs: tuple[Verb, ...]

    def offered(self, info: ResourceInfo) -> bool:
        return any(info.rules.allows(verb) for verb in self.verbs)


def kind_operations(info: ResourceInfo) -> list[Operation]:
    base = f"/{info.plural}"
    one = f"{base}/{{{ID_PARAM}}}"
    table = [
        Operation("list", "GET", base, ("list", "watch")),
        Operation("create", "POST", base, ("create",)),
        Operation("get", "GET", one, ("get",)),
        Operation("replace", "PUT", one, ("update",)),
        Operation("patch", "PATCH", one, ("patch",)),
        Operation("delete", "DELETE", one, ("delete",)),
        Operation("replace_status", "PUT", f"{one}/status", ("status",)),
        Operation("patch_status", "PATCH", f"{one}/status", ("status",)),
    ]
    if info.versioning:
        version = f"{one}/versions/{{{VERSION_PARAM}}}"
        table += [
            Operation("list_versions", "GET", f"{one}/versions", ("versions",)),
            Operation("get_version", "GET", version, ("versions",)),
            Operation("delete_version", "DELETE", version, ("versions",)),
        ]
    return table


def offered_operations(info: ResourceInfo) -> list[Operation]:
    """The operations the kind's ``verbs=`` and ``exposure=`` leave: what is routed and
    documented (an ``internal`` kind has none)."""
    if not info.rules.served:
        return []
    return [op for op in kind_operations(info) if op.offered(info)]
