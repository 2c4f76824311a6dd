"""The auth options of ``serve`` and the ``token`` command of a generated service.

``--auth-jwks-url``, ``--auth-public-key``, ``--auth-secret``, ``--auth-issuer``,
``--auth-audience`` and ``--auth-policy``, each also read from ``PKGUPPER_AUTH_...``. A
project with auth on refuses to start without a key source or a loadable policy; a project
with auth off refuses key options rather than silently serving without the protection they
suggest. SIGHUP reloads the policy.
"""

from __future__ import annotations

import logging
import signal
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import click

from ... import auth as _auth
from ..._settings import ServiceSettings

if TYPE_CHECKING:
    from ...auth import Auth

__all__ = ["auth_from_options", "auth_options", "reload_policy_on_sighup", "token_command"]

log = logging.getLogger("fabrica.server")

_OPTIONS = ("auth_jwks_url", "auth_public_key", "auth_secret", "auth_issuer", "auth_audience",
            "auth_policy")
_SECRET_HELP = "HS256 secret for development tokens (at least 32 bytes)."


def _key_options(env: str, f: Callable[..., Any]) -> Callable[..., Any]:
    f = click.option("--auth-audience", metavar="AUD", envvar=f"{env}_AUTH_AUDIENCE",
                     help="Required aud claim.")(f)
    f = click.option("--auth-issuer", metavar="ISS", envvar=f"{env}_AUTH_ISSUER",
                     help="Required iss claim.")(f)
    return click.option("--auth-secret", metavar="SECRET", envvar=f"{env}_AUTH_SECRET",
                        help=_SECRET_HELP)(f)


def auth_options(env: str) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """The auth options of ``serve``."""

    def decorate(f: Callable[..., Any]) -> Callable[..., Any]:
        f = click.option("--auth-policy", metavar="DIR", default="auth", show_default=True,
                         envvar=f"{env}_AUTH_POLICY",
                         help="Directory with the Casbin model.conf and policy.csv.")(f)
        f = _key_options(env, f)
        f = click.option("--auth-public-key", metavar="FILE", envvar=f"{env}_AUTH_PUBLIC_KEY",
                         help="PEM public key (RSA or EC) that signs tokens.")(f)
        return click.option("--auth-jwks-url", metavar="URL", envvar=f"{env}_AUTH_JWKS_URL",
                            help="The token issuer's JWKS (TokenSmith, any OIDC provider).")(f)

    return decorate


def auth_from_options(settings: ServiceSettings, options: dict[str, Any]) -> Auth | None:
    """The service's `Auth` from the ``serve`` options (popped from `options`), or None when
    the project runs without auth."""
    values = {name: options.pop(name, None) for name in _OPTIONS}
    env = settings.env_prefix
    keys = ("auth_jwks_url", "auth_public_key", "auth_secret")
    if not settings.auth:
        given = [name for name in keys if values[name]]
        if given:
            flags = ", ".join("--" + name.replace("_", "-") for name in given)
            raise click.UsageError(
                f"{flags} given, but this project has auth off: set features.auth.enabled: "
                "true in .fabrica.yaml and run fabrica generate (or unset "
                f"{env}_AUTH_*) rather than serve unprotected")
        return None
    if not any(values[name] for name in keys):
        raise click.UsageError(
            "auth is on but no key source is configured: give --auth-jwks-url URL (TokenSmith "
            "or any OIDC issuer), --auth-public-key FILE, or --auth-secret SECRET for "
            f"development (or {env}_AUTH_JWKS_URL / _AUTH_PUBLIC_KEY / _AUTH_SECRET)")
    try:
        verifier = _auth.TokenVerifier(
            jwks=_auth.JWKSCache(values["auth_jwks_url"]) if values["auth_jwks_url"] else None,
            public_keys=[_auth.PublicKey.from_file(values["auth_public_key"])]
            if values["auth_public_key"] else (),
            secret=values["auth_secret"] or None,
            issuer=values["auth_issuer"], audience=values["auth_audience"])
        policy = _auth.Policy(values["auth_policy"])
    except (ValueError, _auth.PolicyError) as exc:
        raise click.UsageError(str(exc)) from None
    log.info("auth: bearer tokens checked against %s", verifier.describe())
    log.info("auth: policy from %s (%d rules; kill -HUP reloads it)", policy.directory,
             policy.rules)
    return _auth.Auth(verifier, policy)


def reload_policy_on_sighup(auth: Auth) -> None:
    """SIGHUP re-reads the policy files (the handler runs on the main thread, between two
    steps of the event loop; the policy swaps in one assignment)."""
    signal.signal(signal.SIGHUP, lambda signum, frame: auth.reload_policy())


def token_command(settings: ServiceSettings) -> click.Command:
    env = settings.env_prefix

    @click.command(help="Print an HS256 development token signed with the server's secret "
                   "(--auth-secret / " f"{env}_AUTH_SECRET).")
    @click.option("--sub", required=True, help="The subject: who the token speaks for.")
    @click.option("--scope", "roles", default="", metavar="ROLES",
                  help="Roles, space- or comma-separated, e.g. 'viewer' or 'editor viewer'.")
    @click.option("--ttl", default="1h", show_default=True, metavar="DURATION",
                  help="Lifetime: 90s, 15m, 1h, 7d.")
    @_key_option_group(env)
    def token(sub: str, roles: str, ttl: str, auth_secret: str | None,
              auth_issuer: str | None, auth_audience: str | None) -> None:
        if not auth_secret:
            raise click.UsageError(f"no secret: give --auth-secret SECRET or set "
                                   f"{env}_AUTH_SECRET, the same the server uses")
        try:
            seconds = _auth.parse_duration(ttl)
            click.echo(_auth.mint_token(auth_secret, sub, roles.replace(",", " ").split(), seconds,
                                  issuer=auth_issuer, audience=auth_audience))
        except ValueError as exc:
            raise click.UsageError(str(exc)) from None

    return token


def _key_option_group(env: str) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    return lambda f: _key_options(env, f)
