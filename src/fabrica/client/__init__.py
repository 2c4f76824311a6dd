"""The client side of a fabrica service: typed Python clients and the command line.

- `Client` / `AsyncClient`: typed by the project's resource classes
  (``client.get(Device, "web-01")`` returns a ``Device``), with paging, ``If-Match``,
  retries of idempotent requests, and one exception class per error status.
- `RawClient` / `AsyncRawClient`: the same operations, JSON in and JSON out
  (``client.raw``), for passing the server's JSON through unchanged.
- `Client.watch` / `AsyncClient.watch`: follow a kind's changes (``GET /PLURAL?watch=true``)
  as `WatchEvent` objects; a version too old raises `Expired` (410), one newer than the
  server's `TooLargeResourceVersion` (504).
- `Informer` / `AsyncInformer`: a local cache of one kind kept current by list-then-watch,
  with add/update/delete handlers, resuming after disconnects and relisting after a 410 or
  a 504.
- `main`: the generated ``python -m PKG.client KIND VERB ...`` command line, loaded (with
  click, PyYAML and rich) only when asked for: ``from PKG.client import Client`` does not.
"""

from typing import TYPE_CHECKING, Any

from ._async_client import AsyncClient
from ._async_informer import AsyncInformer
from ._calls import PATCH_TYPES
from ._client import Client
from ._errors import (
    BadRequest,
    Conflict,
    ConnectionFailed,
    Expired,
    FabricaError,
    Forbidden,
    MethodNotAllowed,
    NotFound,
    PayloadTooLarge,
    PreconditionFailed,
    ServerError,
    TooLargeResourceVersion,
    Unauthorized,
    Unprocessable,
    UnsupportedMediaType,
    ValidationError,
)
from ._informer import Informer
from ._raw import (
    DEFAULT_SERVER,
    DEFAULT_TIMEOUT,
    RESOURCE_VERSION_HEADER,
    AsyncRawClient,
    RawClient,
)
from ._watch import WatchEvent

if TYPE_CHECKING:
    from ._cli import client_cli, main

__all__ = [
    "DEFAULT_SERVER",
    "DEFAULT_TIMEOUT",
    "PATCH_TYPES",
    "RESOURCE_VERSION_HEADER",
    "AsyncClient",
    "AsyncInformer",
    "AsyncRawClient",
    "BadRequest",
    "Client",
    "Conflict",
    "ConnectionFailed",
    "Expired",
    "FabricaError",
    "Forbidden",
    "Informer",
    "MethodNotAllowed",
    "NotFound",
    "PayloadTooLarge",
    "PreconditionFailed",
    "RawClient",
    "ServerError",
    "TooLargeResourceVersion",
    "Unauthorized",
    "Unprocessable",
    "UnsupportedMediaType",
    "ValidationError",
    "WatchEvent",
    "client_cli",
    "main",
]


def __getattr__(name: str) -> Any:
    if name in ("client_cli", "main"):  # the command line's modules load on first use
        from . import _cli

        return getattr(_cli, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
