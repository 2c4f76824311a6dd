"""What token checks and policies raise: each names what is wrong, in words for the client."""

from __future__ import annotations

__all__ = ["InvalidToken", "KeysUnavailable", "PolicyError"]


class InvalidToken(Exception):
    """The bearer token cannot be accepted; ``description`` says why (it goes into the 401's
    ``WWW-Authenticate: Bearer error_description``)."""

    def __init__(self, description: str) -> None:
        super().__init__(description)
        self.description = description


class KeysUnavailable(Exception):
    """No signing keys could be had from the issuer (JWKS unreachable): the server's
    problem, not the client's."""


class PolicyError(Exception):
    """The Casbin model or policy is missing or does not load."""
