"""Which paths need no token, and the bearer scheme in the OpenAPI document (no imports of
the auth machinery: the code generator writes the same document)."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

__all__ = ["OPEN_PATHS", "OPEN_PREFIX", "add_bearer_security", "public_plurals"]

OPEN_PATHS = frozenset({"/health", "/ready", "/openapi.json", "/docs", "/docs/", "/ui"})
# Swagger UI's and the console's own files: pages that hold no data (the console asks the
# user for a token and sends it with every API request it makes)
OPEN_PREFIX = ("/docs/static/", "/ui/")
_SCHEME = "bearerAuth"


def public_plurals(kinds: Sequence[type[Any]]) -> frozenset[str]:
    """The collections of the kinds declared ``exposure="public"``: no token needed."""
    return frozenset(cls.resource_info.plural for cls in kinds
                     if cls.resource_info.rules.exposure == "public")


def add_bearer_security(document: dict[str, Any], public: Iterable[str] = ()) -> dict[str, Any]:
    """Declare the bearer scheme in an OpenAPI document and require it on every operation
    but the open paths and those of the `public` collections (plurals), so Swagger UI shows
    Authorize and sends the token."""
    public = frozenset(public)
    components = document.setdefault("components", {})
    components.setdefault("securitySchemes", {})[_SCHEME] = {
        "type": "http", "scheme": "bearer", "bearerFormat": "JWT",
        "description": "A JWT from the service's token issuer (TokenSmith or any OIDC "
                       "provider), or a development token from `python -m PKG.server token`.",
    }
    document["security"] = [{_SCHEME: []}]
    for path, item in document.get("paths", {}).items():
        for operation in item.values():
            if not isinstance(operation, dict) or "responses" not in operation:
                continue
            if path in OPEN_PATHS or path.split("/")[1] in public:
                operation["security"] = []
            else:
                operation["responses"].setdefault("401", _error_body("Missing or invalid token"))
                operation["responses"].setdefault("403", _error_body("Not allowed by the policy"))
    return document


def _error_body(description: str) -> dict[str, Any]:
    return {"description": description, "content": {"application/json": {
        "schema": {"$ref": "#/components/schemas/Error"}}}}
