"""The OpenAPI 3.1 document of a service (SPEC section 3): its kinds' operations and
schemas in each served API version, and the bearer scheme when auth is on."""

from ._auth_openapi import add_bearer_security, public_plurals
from ._openapi import build_openapi

__all__ = ["add_bearer_security", "build_openapi", "public_plurals"]
