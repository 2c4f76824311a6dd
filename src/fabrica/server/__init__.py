"""The HTTP server: `create_app` (ASGI) and `main` (the generated ``serve`` command).

What one request may cost is bounded by the body limit (``max_body_size``, default
`DEFAULT_MAX_BODY_SIZE`, 1 MiB): bodies at most that size and 64 levels deep; patch results
at most the larger of that and the document's current size, checked while a patch applies
(`_patch.py`, `_json_patch.py`); validation errors at most one per field and collection;
label selectors at most 16 KiB. So a request raises the process's peak memory by at most 160
times the body limit over what it held before (tests/e2e/test_hostile_memory.py measures it
for every request of tests/_support/hostile.py).
"""

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
