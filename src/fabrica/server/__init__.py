"""The HTTP server: `create_app` (ASGI) and `main` (the generated ``serve`` command).

Its parts: `http` (routes, bodies, watches, middleware), `openapi` (the document) and
`process` (the command line, uvicorn and workers, a controller's probes).

What one request may cost is bounded by the body limit (``max_body_size``, default
`DEFAULT_MAX_BODY_SIZE`, 1 MiB): bodies at most that size and 64 levels deep; patch results
at most the larger of that and the document's current size, checked while a patch applies
(`http/_patch.py`, `http/_json_patch.py`); validation errors at most one per field and collection;
label selectors at most 16 KiB. So a request raises the process's peak memory by at most 160
times the body limit over what it held before (tests/e2e/test_hostile_memory.py measures it
for every request of tests/_support/hostile.py).
"""

from .http import DEFAULT_MAX_BODY_SIZE, DEFAULT_STORAGE_TIMEOUT, create_app
from .openapi import add_bearer_security, build_openapi
from .process import main, service_cli

__all__ = [
    "DEFAULT_MAX_BODY_SIZE",
    "DEFAULT_STORAGE_TIMEOUT",
    "add_bearer_security",
    "build_openapi",
    "create_app",
    "main",
    "service_cli",
]
