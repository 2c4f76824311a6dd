"""The error body of every failed request: ``{"error", "code", "details"?}``.

Anything a client sent that is wrong maps to a 4xx here; only a bug in fabrica or in user
code reaches the catch-all, which logs it and answers 500 without internals.
"""

from __future__ import annotations

import logging
from typing import Any

from pydantic import BaseModel, ValidationError
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from ...resource import InvalidMetadata, InvalidText, redact_details
from ...storage import AlreadyExists, Conflict, Invalid, NotFound, Unavailable
from ...store import HookFailed, ImmutableFieldError, OwnerReferenceError, Reject

__all__ = ["APIError", "error_response", "exception_handlers", "validation_details"]

log = logging.getLogger("fabrica.server")


class APIError(Exception):
    def __init__(
        self, status: int, message: str, details: list[dict[str, str]] | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.details = details
        self.headers = headers


def error_response(
    status: int,
    message: str,
    details: list[dict[str, str]] | None = None,
    headers: dict[str, str] | None = None,
) -> Response:
    body: dict[str, Any] = {"error": message, "code": status}
    if details:
        body["details"] = details
    return JSONResponse(body, status_code=status, headers=headers)


def validation_details(exc: ValidationError, prefix: str = "",
                       model: type[BaseModel] | None = None) -> list[dict[str, str]]:
    """Each failing field by its JSON path, e.g. ``spec.port``; with the `model` validated,
    no message of a user's validator about one of its sensitive fields (it may quote the
    value)."""
    found = []
    for err in exc.errors(include_url=False):
        path = ".".join(str(part) for part in err["loc"])
        field = f"{prefix}.{path}" if prefix and path else (prefix or path)
        found.append((field, err["msg"], err["type"]))
    if model is not None:
        return redact_details(model, prefix, found)
    return [{"field": field, "message": message} for field, message, _ in found]


async def _api_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, APIError)
    return error_response(exc.status, exc.message, exc.details, exc.headers)


async def _invalid_text(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, InvalidText)
    return error_response(400, str(exc), [{"field": exc.path, "message": "not valid Unicode "
                                           "text: holds a lone UTF-16 surrogate"}])


async def _invalid_metadata(request: Request, exc: Exception) -> Response:
    """Metadata that breaks the model's rules, read from a body or written by the store."""
    assert isinstance(exc, InvalidMetadata)
    return error_response(400, exc.message, [{"field": field, "message": message}
                                             for field, message in exc.causes])


async def _owner_reference(request: Request, exc: Exception) -> Response:
    """A reference this service cannot resolve: a kind it does not serve, or a uid that
    names nothing now. Both are facts of this service, not of the body's shape: 422."""
    assert isinstance(exc, OwnerReferenceError)
    return error_response(422, f"invalid {exc.field}: {exc.message}",
                          [{"field": exc.field, "message": exc.message}])


async def _not_found(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, NotFound)
    return error_response(404, f"{exc.collection} {exc.key!r} not found")


async def _already_exists(request: Request, exc: Exception) -> Response:
    """A taken name or uid, or a unique value: then each field of the constraint is named
    in ``details`` with the uid holding the value (never the value: it may be 64 KiB)."""
    assert isinstance(exc, AlreadyExists)
    if exc.field in ("uid", "name"):
        return error_response(409, str(exc))
    fields = exc.field.split("+")
    held = f"held by {exc.holder}" if exc.holder else "held by another resource"
    what = " and ".join(fields)
    message = (f"{exc.collection}: another resource already has this {what} ({held}); "
               f"{'the combination' if len(fields) > 1 else 'it'} must be unique")
    return error_response(409, message, [{"field": field, "message": f"must be unique: "
                                          f"{held}"} for field in fields])


async def _immutable(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, ImmutableFieldError)
    return error_response(422, str(exc), [{"field": exc.field, "message": "immutable: "
                                           "cannot change once set"}])


async def _conflict(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, Conflict)
    return error_response(409, str(exc))


async def _invalid(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, Invalid)
    return error_response(400, str(exc))


async def _reject(request: Request, exc: Exception) -> Response:
    """A project's hook refusing a write, with its own status and words."""
    assert isinstance(exc, Reject)
    details = [{"field": exc.field, "message": exc.message}] if exc.field else None
    return error_response(exc.status, exc.message, details)


async def _hook_failed(request: Request, exc: Exception) -> Response:
    """A hook's bug or hang: the store logged what it raised; the answer names the hook."""
    assert isinstance(exc, HookFailed)
    return error_response(500, str(exc))


async def _unavailable(request: Request, exc: Exception) -> Response:
    log.warning("storage unavailable on %s %s: %s", request.method, request.url.path, exc)
    return error_response(503, "storage temporarily unavailable; retry shortly",
                          headers={"Retry-After": "1"})


async def _http_exception(request: Request, exc: Exception) -> Response:
    status = getattr(exc, "status_code", 500)
    message = getattr(exc, "detail", "") or "error"
    return error_response(status, str(message), headers=getattr(exc, "headers", None))


async def _unexpected(request: Request, exc: Exception) -> Response:
    log.exception("unhandled error on %s %s", request.method, request.url.path)
    return error_response(500, "internal server error")


def exception_handlers() -> dict[Any, Any]:
    from starlette.exceptions import HTTPException

    return {
        APIError: _api_error,
        InvalidText: _invalid_text,
        InvalidMetadata: _invalid_metadata,
        OwnerReferenceError: _owner_reference,
        ImmutableFieldError: _immutable,
        NotFound: _not_found,
        AlreadyExists: _already_exists,
        Conflict: _conflict,
        Invalid: _invalid,
        Reject: _reject,
        HookFailed: _hook_failed,
        Unavailable: _unavailable,
        HTTPException: _http_exception,
        Exception: _unexpected,
    }
