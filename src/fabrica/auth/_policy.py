"""`Policy`: who may do what, as a Casbin RBAC model and policy read from a directory.

The request is ``(subject, object, action)``: the object is a collection's plural path
(``racks``), ``events`` or ``metrics``; the action one of `ACTIONS`. A principal is allowed
when its subject (the token's ``sub``) or any of its roles is, so a policy can grant rights
to roles from the token and, with Casbin's ``g, alice, editor`` lines, to single users.
Decisions are cached per (subject, roles, object, action); a reload swaps the enforcer and
the cache together, and a policy that fails to load leaves the previous one in force.
"""

from __future__ import annotations

import logging
from collections import OrderedDict
from pathlib import Path

import casbin  # type: ignore[import-untyped]

from ._defaults import MODEL_FILE, POLICY_FILE
from ._errors import PolicyError
from ._principal import Principal

__all__ = ["Policy"]

log = logging.getLogger("fabrica.auth")

class Policy:
    """The Casbin enforcer of `directory`'s ``model.conf`` and ``policy.csv``."""

    def __init__(self, directory: str | Path, *, cache_size: int = 10_000) -> None:
        self.directory = Path(directory)
        self.cache_size = cache_size
        self._enforcer = self._load()
        self._decisions: OrderedDict[tuple[str, tuple[str, ...], str, str], bool] = OrderedDict()

    @property
    def rules(self) -> int:
        return len(self._enforcer.get_policy()) + len(self._enforcer.get_grouping_policy())

    def allows(self, principal: Principal, obj: str, act: str) -> bool:
        key = (principal.sub, principal.roles, obj, act)
        decisions = self._decisions
        decision = decisions.get(key)
        if decision is None:
            enforcer = self._enforcer
            decision = any(enforcer.enforce(subject, obj, act)
                           for subject in (principal.sub, *principal.roles))
            decisions[key] = decision
            if len(decisions) > self.cache_size:
                decisions.popitem(last=False)
        return decision

    def reload(self) -> None:
        """Read the files again; on any error keep the policy in force and raise."""
        enforcer = self._load()
        self._enforcer, self._decisions = enforcer, OrderedDict()

    def _load(self) -> casbin.Enforcer:
        model, policy = self.directory / MODEL_FILE, self.directory / POLICY_FILE
        for path in (model, policy):
            if not path.is_file():
                raise PolicyError(f"no {path}: the auth policy needs {MODEL_FILE} and "
                                  f"{POLICY_FILE} in {self.directory}")
        try:
            enforcer = casbin.Enforcer(str(model), str(policy))
            enforcer.enforce("fabrica:check", "*", "get")  # a model that cannot answer fails now
        except Exception as exc:  # casbin raises anything from its parsers: say where
            raise PolicyError(f"cannot load the auth policy from {self.directory}: "
                              f"{type(exc).__name__}: {exc}") from None
        return enforcer
