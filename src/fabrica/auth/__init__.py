"""Authentication and authorization: bearer JWTs (TokenSmith or any OIDC issuer) and
Casbin RBAC policies (SPEC section 7).

- `TokenVerifier` checks a token (PyJWT: RS*/ES* against a `JWKSCache` or `PublicKey`,
  HS256 against a development secret) and returns a `Principal` (``sub`` and roles), or
  raises `InvalidToken` saying why.
- `Policy` answers whether a principal may do an action on an object (Casbin).
- `Auth` bundles both for the server; `mint_token` makes development tokens.

The classes that need PyJWT, cryptography or Casbin load on first use, so a service without
auth, and the code generator (which only needs `DEFAULT_MODEL` and `DEFAULT_POLICY`), do not
pay their import time.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from ._defaults import ACTIONS, DEFAULT_MODEL, DEFAULT_POLICY, MODEL_FILE, POLICY_FILE
from ._errors import InvalidToken, KeysUnavailable, PolicyError
from ._principal import Principal, roles_from_claims

if TYPE_CHECKING:
    from ._auth import Auth
    from ._jwks import JWKSCache
    from ._mint import mint_token, parse_duration
    from ._policy import Policy
    from ._tokens import DEFAULT_LEEWAY, MIN_SECRET_BYTES, PublicKey, TokenVerifier

__all__ = [
    "ACTIONS",
    "DEFAULT_LEEWAY",
    "DEFAULT_MODEL",
    "DEFAULT_POLICY",
    "MIN_SECRET_BYTES",
    "MODEL_FILE",
    "POLICY_FILE",
    "Auth",
    "InvalidToken",
    "JWKSCache",
    "KeysUnavailable",
    "Policy",
    "PolicyError",
    "Principal",
    "PublicKey",
    "TokenVerifier",
    "mint_token",
    "parse_duration",
    "roles_from_claims",
]

_LAZY = {
    "Auth": "_auth",
    "JWKSCache": "_jwks",
    "mint_token": "_mint",
    "parse_duration": "_mint",
    "Policy": "_policy",
    "DEFAULT_LEEWAY": "_tokens",
    "MIN_SECRET_BYTES": "_tokens",
    "PublicKey": "_tokens",
    "TokenVerifier": "_tokens",
}


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(f"{__name__}.{module}"), name)
    globals()[name] = value
    return value
