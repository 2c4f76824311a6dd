"""`Auth`: a service's token verifier and policy, with what the server needs around them."""

from __future__ import annotations

import logging
from dataclasses import dataclass

from ._errors import PolicyError
from ._policy import Policy
from ._tokens import TokenVerifier

__all__ = ["Auth"]

log = logging.getLogger("fabrica.auth")


@dataclass
class Auth:
    """Authentication (`verifier`) and authorization (`policy`) of one service."""

    verifier: TokenVerifier
    policy: Policy

    async def start(self) -> None:
        """Fetch the JWKS now, so the first request does not wait for it (a failure is
        logged; requests retry it, rate-limited)."""
        if self.verifier.jwks is not None:
            await self.verifier.jwks.refresh()

    async def close(self) -> None:
        if self.verifier.jwks is not None:
            await self.verifier.jwks.close()

    def reload_policy(self) -> bool:
        """Read the policy files again (SIGHUP); a broken policy is logged and the one in
        force stays. True when the new policy was taken."""
        try:
            self.policy.reload()
        except PolicyError as exc:
            log.error("policy reload failed, keeping the previous policy: %s", exc)
            return False
        log.info("policy reloaded from %s: %d rules", self.policy.directory, self.policy.rules)
        return True
