"""The server's side of auth: every request but the open ones needs a bearer token that the
verifier accepts and the policy allows (SPEC section 7).

An ASGI middleware, so it guards every route (``/events`` and ``/metrics`` included) and
costs a dictionary look-up per request once a token is verified and a decision cached.
Each request is classified as (object, action): the object is the path's first segment (a
collection's plural, ``events``, ``metrics``), the action comes from the method and the path
shape (``list`` vs ``get``, ``watch`` for ``?watch=true``, ``status`` for any write to
``/status``); reading ``/events`` is ``watch events``, reading ``/metrics`` ``get metrics``.
Failures follow RFC 6750: 401 with ``WWW-Authenticate: Bearer`` (with
``error="invalid_token"`` when a token was sent), 403 naming the action and the object, and
the body every error has. The token's ``sub`` becomes the actor of the request's writes.

Every decision is counted (``fabrica_authz_decisions_total{decision}``, allow or deny). In
``shadow`` mode (SPEC section 13) each is also logged and a denied request is served, so a
new policy can be watched on real traffic before it refuses anything; a missing or invalid
token is 401 in both modes (there is no one to decide about).
"""

from __future__ import annotations

import logging
import re
from typing import Any
from urllib.parse import parse_qsl

from prometheus_client import CollectorRegistry, Counter
from starlette.types import ASGIApp, Receive, Scope, Send

from ...auth import Auth, InvalidToken, KeysUnavailable, Principal
from ...store import ANONYMOUS, reset_actor, reset_roles, set_actor, set_roles
from ..openapi._auth_openapi import OPEN_PATHS, OPEN_PREFIX
from ._errors import error_response

__all__ = ["AuthMiddleware", "request_target"]

log = logging.getLogger("fabrica.auth")

_UNSAFE = re.compile(r'[^\x20-\x7e]|["\\]')
_WRITES = {"POST": "create", "PUT": "update", "PATCH": "patch", "DELETE": "delete"}
_READS = {"/events": ("events", "watch"), "/metrics": ("metrics", "get")}  # not collections
ANONYMOUS_PRINCIPAL = Principal(ANONYMOUS)


class AuthMiddleware:
    def __init__(self, app: ASGIApp, auth: Auth, realm: str,
                 public: frozenset[str] = frozenset(), mode: str = "enforce",
                 registry: CollectorRegistry | None = None) -> None:
        self.app = app
        self.auth = auth
        self.realm = _quote(realm)
        self.public = public  # plurals of exposure="public" kinds
        self.shadow = mode == "shadow"
        decisions = Counter("fabrica_authz_decisions_total",
                            "Authorization decisions (in shadow mode the denied are served)",
                            ["decision"], registry=registry or CollectorRegistry())
        self._allowed, self._denied = decisions.labels("allow"), decisions.labels("deny")

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        kind = scope["type"]
        path = scope.get("path", "")
        if kind == "lifespan" or path in OPEN_PATHS or path.startswith(OPEN_PREFIX):
            await self.app(scope, receive, send)
            return
        outcome = await self._check(scope)
        if isinstance(outcome, Principal):
            token = set_actor(outcome.sub)  # the writer of whatever this request writes
            roles = set_roles(outcome.roles)  # (hooks may decide by them)
            try:
                await self.app(scope, receive, send)
            finally:
                reset_roles(roles)
                reset_actor(token)
        elif kind == "websocket":  # no HTTP response to send: refuse the handshake
            await send({"type": "websocket.close", "code": 1008})
        else:
            await outcome(scope, receive, send)

    async def _check(self, scope: Scope) -> Any:
        """The principal, or the error response to send."""
        token = _bearer_token(scope)
        public = self.public and scope["path"].split("/")[1] in self.public
        if token is None and public:
            return ANONYMOUS_PRINCIPAL  # a public kind: anyone, as anonymous
        if token is None:
            return self._unauthorized("authentication required: send Authorization: Bearer "
                                      "TOKEN", None)
        try:
            principal = await self.auth.verifier.verify(token)
        except InvalidToken as exc:
            return self._unauthorized(f"invalid token: {exc.description}", exc.description)
        except KeysUnavailable as exc:
            log.error("cannot verify tokens: %s", exc)
            return error_response(503, "cannot verify tokens right now: the token issuer's "
                                  "keys are unavailable", headers={"Retry-After": "5"})
        obj, act = request_target(scope.get("method", "GET"), scope["path"],
                                  scope.get("query_string", b""))
        if public:  # an exposure="public" kind: a token sent is checked, no policy applies
            return principal
        allowed = self.auth.policy.allows(principal, obj, act)
        (self._allowed if allowed else self._denied).inc()
        if self.shadow:
            log.info("authz shadow: %s %s %s %s", "allow" if allowed else "deny (served)",
                     principal.describe(), act, obj)
            return principal
        if not allowed:
            message = f"{principal.describe()} may not {act} {obj}"
            return error_response(403, f"forbidden: {message}", headers={
                "WWW-Authenticate": f'Bearer realm="{self.realm}", error="insufficient_scope", '
                                    f'error_description="{_quote(message)}"'})
        return principal

    def _unauthorized(self, message: str, description: str | None) -> Any:
        challenge = f'Bearer realm="{self.realm}"'
        if description is not None:
            challenge += f', error="invalid_token", error_description="{_quote(description)}"'
        return error_response(401, message, headers={"WWW-Authenticate": challenge})


def request_target(method: str, path: str, query: bytes | str = b"") -> tuple[str, str]:
    """(object, action) of a request, as the policy names them."""
    parts = [p for p in path.split("/") if p]
    obj = parts[0] if parts else "*"
    if method in ("GET", "HEAD"):
        if path in _READS:
            return _READS[path]
        if len(parts) == 1:
            return obj, "watch" if _watching(query) else "list"
        return obj, "get"
    if len(parts) >= 3 and parts[2] == "status":
        return obj, "status"
    return obj, _WRITES.get(method, method.lower())


def _watching(query: bytes | str) -> bool:
    if not query:
        return False
    text = query.decode("latin-1") if isinstance(query, bytes) else query
    if "watch" not in text:
        return False
    values = [v for k, v in parse_qsl(text, keep_blank_values=True) if k == "watch"]
    return any(v.lower() not in ("", "false", "0") for v in values)


def _bearer_token(scope: Scope) -> str | None:
    name: bytes
    value: bytes
    for name, value in scope["headers"]:
        if name == b"authorization":
            scheme, _, token = value.decode("latin-1").strip().partition(" ")
            if scheme.lower() == "bearer" and token.strip():
                return token.strip()
            return None
    return None


def _quote(text: str) -> str:
    """Safe inside a quoted-string of a header (RFC 6750 limits error_description to
    printable ASCII without quotes and backslashes)."""
    return _UNSAFE.sub("'", text)[:300]
