"""The client side of a fabrica service: typed Python clients and the command line.

- `Client` / `AsyncClient`: typed by the project's resource classes
  (``client.get(Device, "web-01")`` returns a ``Device``), with paging, ``If-Match``,
  retries of idempotent requests, and one exception class per error status.
- `RawClient` / `AsyncRawClient`: the same operations, JSON in and JSON out
  (``client.raw``), for passing the server's JSON through unchanged.
- `main`: the generated ``python -m PKG.client KIND VERB ...`` command line.
"""

from ._async_client import AsyncClient
from ._calls import PATCH_TYPES
from ._cli import client_cli, main
from ._client import Client
from ._errors import (
    BadRequest,
    Conflict,
    ConnectionFailed,
    FabricaError,
    Forbidden,
    NotFound,
    PayloadTooLarge,
    PreconditionFailed,
    ServerError,
    Unauthorized,
    Unprocessable,
    UnsupportedMediaType,
    ValidationError,
)
from ._raw import DEFAULT_SERVER, DEFAULT_TIMEOUT, AsyncRawClient, RawClient

__all__ = [
    "DEFAULT_SERVER",
    "DEFAULT_TIMEOUT",
    "PATCH_TYPES",
    "AsyncClient",
    "AsyncRawClient",
    "BadRequest",
    "Client",
    "Conflict",
    "ConnectionFailed",
    "FabricaError",
    "Forbidden",
    "NotFound",
    "PayloadTooLarge",
    "PreconditionFailed",
    "RawClient",
    "ServerError",
    "Unauthorized",
    "Unprocessable",
    "UnsupportedMediaType",
    "ValidationError",
    "client_cli",
    "main",
]
