"""Swagger UI at ``/docs``, from assets shipped inside the package (no CDN, works offline).

``validatorUrl: null`` turns off the badge that would otherwise send the document to
validator.swagger.io from any host but localhost: the page asks nothing of the internet.
"""

from __future__ import annotations

from pathlib import Path

from starlette.requests import Request
from starlette.responses import HTMLResponse
from starlette.routing import BaseRoute, Mount, Route
from starlette.staticfiles import StaticFiles

__all__ = ["docs_routes"]

_ASSETS = Path(__file__).parent / "_static" / "swagger-ui"
_PAGE = """<!DOCTYPE html>
<html lang="en">
<head>
  <meta charset="utf-8">
  <title>{title} - API docs</title>
  <link rel="stylesheet" href="/docs/static/swagger-ui.css">
  <link rel="icon" type="image/png" href="/docs/static/favicon-32x32.png">
</head>
<body>
  <div id="swagger-ui"></div>
  <script src="/docs/static/swagger-ui-bundle.js"></script>
  <script>
    window.ui = SwaggerUIBundle({{url: "/openapi.json", dom_id: "#swagger-ui",
                                  deepLinking: true, validatorUrl: null}});
  </script>
</body>
</html>
"""


def docs_routes(title: str) -> list[BaseRoute]:
    page = _PAGE.format(title=title.replace("<", "&lt;"))

    async def docs(request: Request) -> HTMLResponse:
        return HTMLResponse(page)

    return [
        Route("/docs", docs, methods=["GET"]),
        Mount("/docs/static", StaticFiles(directory=_ASSETS), name="swagger-ui"),
    ]
