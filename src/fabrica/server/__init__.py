"""The HTTP server: `create_app` (ASGI) and `main` (the generated ``serve`` command)."""

from ._app import DEFAULT_MAX_BODY_SIZE, create_app
from ._cli import main, service_cli
from ._openapi import build_openapi

__all__ = ["DEFAULT_MAX_BODY_SIZE", "build_openapi", "create_app", "main", "service_cli"]
