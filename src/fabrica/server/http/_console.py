"""The web console at ``/ui`` (SPEC section 14): static files shipped inside the package.

The console is a page of plain JavaScript modules that talks to the service only through
its public HTTP API (lists, watches, gets, writes with If-Match, ``/openapi.json`` and
``/events``), so the server holds no logic for it: it serves files, and answers any other
path under ``/ui/`` with the page itself, so a link such as ``/ui/kinds/racks/rack-01``
opens the console there (the page turns the path into its ``#/kinds/...`` route).
"""

from __future__ import annotations

from pathlib import Path

from starlette.exceptions import HTTPException
from starlette.responses import Response
from starlette.routing import BaseRoute, Mount
from starlette.staticfiles import StaticFiles
from starlette.types import Scope

__all__ = ["CONSOLE_PATH", "console_routes"]

CONSOLE_PATH = "/ui"
_ASSETS = Path(__file__).parent / "_static" / "console"
_ASSET_SUFFIXES = (".js", ".css", ".png", ".svg", ".ico", ".map", ".txt")


class _Console(StaticFiles):
    """Static files; a path that names none (a deep link) gets ``index.html``, but a missing
    asset stays a 404 (a page in its place would only hide the mistake)."""

    async def get_response(self, path: str, scope: Scope) -> Response:
        try:
            return await super().get_response(path, scope)
        except HTTPException as exc:
            if exc.status_code != 404 or path.endswith(_ASSET_SUFFIXES):
                raise
            return await super().get_response("index.html", scope)


def console_routes() -> list[BaseRoute]:
    """The console's files under ``/ui/`` (the router redirects ``/ui`` there)."""
    return [Mount(CONSOLE_PATH, _Console(directory=_ASSETS, html=True), name="console")]
