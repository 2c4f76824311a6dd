"""The REST surface of one kind, as data: which method on which path runs which operation.

The router (`KindEndpoints.routes`) and the OpenAPI document (`build_openapi`) are both
built from this table, so a path or a parameter name cannot differ between what is served
and what is documented.
"""

from __future__ import annotations

from dataclasses import dataclass

from ...resource import ResourceInfo

__all__ = ["ID_PARAM", "VERSION_PARAM", "Operation", "kind_operations"]

ID_PARAM = "id"
VERSION_PARAM = "versionId"


@dataclass(frozen=True)
class Operation:
    """`name` is the handler's name in `KindEndpoints` and the OpenAPI operation's key."""

    name: str
    method: str
    path: str


def kind_operations(info: ResourceInfo) -> list[Operation]:
    base = f"/{info.plural}"
    one = f"{base}/{{{ID_PARAM}}}"
    table = [
        Operation("list", "GET", base),
        Operation("create", "POST", base),
        Operation("get", "GET", one),
        Operation("replace", "PUT", one),
        Operation("patch", "PATCH", one),
        Operation("delete", "DELETE", one),
        Operation("replace_status", "PUT", f"{one}/status"),
        Operation("patch_status", "PATCH", f"{one}/status"),
    ]
    if info.versioning:
        version = f"{one}/versions/{{{VERSION_PARAM}}}"
        table += [
            Operation("list_versions", "GET", f"{one}/versions"),
            Operation("get_version", "GET", version),
            Operation("delete_version", "DELETE", version),
        ]
    return table
