"""Typed errors: one exception class per HTTP status a fabrica server answers with.

Callers branch on the class (``except NotFound``) rather than on numbers, and every error
carries the server's own words: ``message`` is the body's ``error`` field and ``details`` its
per-field list (``[{"field": "spec.port", "message": "..."}]``) for validation failures.
"""

from __future__ import annotations

from typing import Any

import httpx

__all__ = [
    "BadRequest",
    "Conflict",
    "ConnectionFailed",
    "Expired",
    "FabricaError",
    "Forbidden",
    "MethodNotAllowed",
    "NotFound",
    "PayloadTooLarge",
    "PreconditionFailed",
    "ServerError",
    "TooLargeResourceVersion",
    "Unauthorized",
    "Unprocessable",
    "UnsupportedMediaType",
    "ValidationError",
    "error_for",
    "error_from_response",
]


class FabricaError(Exception):
    """A request failed. ``status`` is the HTTP status, or 0 when no response arrived."""

    def __init__(
        self, status: int, message: str, details: list[dict[str, str]] | None = None
    ) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.details: list[dict[str, str]] = details or []

    def __str__(self) -> str:
        return self.message

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.status}, {self.message!r})"


class BadRequest(FabricaError):
    """400: bad JSON or an invalid body."""


class ValidationError(BadRequest):
    """400 with ``details``: the fields that failed validation, each by its JSON path."""


class Unauthorized(FabricaError):
    """401: no bearer token, or one the server does not accept (expired, wrong signature,
    wrong issuer...); the message says which."""


class Forbidden(FabricaError):
    """403: the token is valid, but the service's policy does not allow this action on
    this collection; the message names both."""


class NotFound(FabricaError):
    """404: no resource with that uid or name (or no such route on this server)."""


class MethodNotAllowed(FabricaError):
    """405: a verb the kind does not offer (its ``verbs=``). The client raises it itself,
    without a request, for a verb its own copy of the kind leaves out."""


class Conflict(FabricaError):
    """409: duplicate name, or a write based on a stale ``resourceVersion``."""


class Expired(FabricaError):
    """410: a watch asked to resume from a ``resourceVersion`` the server no longer keeps
    changes from; list again (taking the list's ``X-Resource-Version``) and watch from there.
    The informer does this by itself."""


class PreconditionFailed(FabricaError):
    """412: the ``If-Match`` version is no longer current."""


class PayloadTooLarge(FabricaError):
    """413: the body exceeds the server's size limit."""


class UnsupportedMediaType(FabricaError):
    """415: a patch content type the server does not accept."""


class Unprocessable(FabricaError):
    """422: a well-formed patch that cannot apply (e.g. a JSON Patch ``test`` failed)."""


class ServerError(FabricaError):
    """5xx: the server failed; the request may be worth retrying later."""


class TooLargeResourceVersion(ServerError):
    """504: a watch asked to resume from a ``resourceVersion`` newer than any the server
    has (Kubernetes' "too large resource version": the server was restored from an older
    backup, or the version came from another service); list again and watch from the
    list's ``X-Resource-Version``. The informer does this by itself."""


class ConnectionFailed(FabricaError):
    """No response: the server could not be reached or the connection broke."""

    def __init__(self, url: str, reason: str) -> None:
        super().__init__(0, f"cannot reach the server at {url}: {reason}")
        self.url = url
        self.reason = reason


_BY_STATUS: dict[int, type[FabricaError]] = {
    400: BadRequest,
    401: Unauthorized,
    403: Forbidden,
    404: NotFound,
    405: MethodNotAllowed,
    409: Conflict,
    410: Expired,
    412: PreconditionFailed,
    413: PayloadTooLarge,
    415: UnsupportedMediaType,
    422: Unprocessable,
    504: TooLargeResourceVersion,
}


def error_from_response(response: httpx.Response) -> FabricaError:
    """The typed error for a failed response, worded as the server worded it."""
    message, details = _error_body(response)
    return error_for(response.status_code, message, details)


def error_for(
    status: int, message: str, details: list[dict[str, str]] | None = None
) -> FabricaError:
    """The typed error for `status` (also a watch's ``ERROR`` event's ``code``)."""
    cls = _BY_STATUS.get(status, ServerError if status >= 500 else FabricaError)
    if cls is BadRequest and details:
        cls = ValidationError
    return cls(status, message, details)


def _error_body(response: httpx.Response) -> tuple[str, list[dict[str, str]]]:
    try:
        body: Any = response.json()
    except ValueError:
        body = None
    if isinstance(body, dict) and isinstance(body.get("error"), str):
        details = body.get("details")
        return body["error"], details if isinstance(details, list) else []
    text = response.text.strip()[:200]
    return text or f"HTTP {response.status_code} {response.reason_phrase}", []
