"""Authentication and authorization: bearer JWTs (TokenSmith or any OIDC issuer) and
Casbin RBAC policies (SPEC section 7).

- `TokenVerifier` checks a token (PyJWT: RS*/ES* against a `JWKSCache` or `PublicKey`,
  HS256 against a development secret) and returns a `Principal` (``sub`` and roles), or
  raises `InvalidToken` saying why.
- `Policy` answers whether a principal may do an action on an object (Casbin).
- `Auth` bundles both for the server; `mint_token` makes development tokens.
"""

from ._auth import Auth
from ._errors import InvalidToken, KeysUnavailable, PolicyError
from ._jwks import JWKSCache
from ._mint import mint_token, parse_duration
from ._policy import ACTIONS, DEFAULT_MODEL, DEFAULT_POLICY, MODEL_FILE, POLICY_FILE, Policy
from ._principal import Principal, roles_from_claims
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
