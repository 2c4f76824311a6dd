"""The HTTP server: `create_app` (ASGI) and `main` (the generated ``serve`` command)."""

from ._app import DEFAULT_MAX_BODY_SIZE, DEFAULT_STORAGE_TIMEOUT, create_app
from ._auth_openapi import add_bearer_security
from ._cli import main, service_cli
from ._openapi import build_openapi

__all__ = [
    "DEFAULT_MAX_BODY_SIZE",
    "DEFAULT_STORAGE_TIMEOUT",
    "add_bearer_security",
    "build_openapi",
    "create_app",
    "main",
    "service_cli",
]
