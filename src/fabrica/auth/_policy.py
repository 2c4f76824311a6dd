"""`Policy`: who may do what, as a Casbin RBAC model and policy read from a directory.

The request is ``(subject, object, action)``: the object is a collection's plural path
(``racks``), ``events`` or ``metrics``; the action one of `ACTIONS`. A principal is allowed
when its subject (the token's ``sub``) or any of its roles is, so a policy can grant rights
to roles from the token and, with Casbin's ``g, alice, editor`` lines, to single users.
Decisions are cached per (subject, roles, object, action); a reload swaps the enforcer and
the cache together, and a policy that fails to load leaves the previous one in force.

Users and roles are two namespaces, so no ``sub`` is ever taken for a role of the same name
(an issuer may let users pick their own: one picking ``admin`` gets nothing from it). The
enforcer is asked about ``user:SUB`` and ``role:ROLE``, and the policy file is read into the
same terms: a rule's subject is a role, the right of ``g`` a role, and the left of ``g`` a
role when the file uses that name as a role anywhere else, otherwise a user. ``user:NAME`` and
``role:NAME`` in the file say which outright (a user's own rules: ``p, user:alice, ...``).
Files written before keep their meaning for roles and for ``g, USER, ROLE`` lines.
"""

from __future__ import annotations

import logging
from collections import OrderedDict
from pathlib import Path
from typing import Any

import casbin  # type: ignore[import-untyped]
from casbin.persist.adapters import FileAdapter  # type: ignore[import-untyped]

from ._defaults import MODEL_FILE, POLICY_FILE
from ._errors import PolicyError
from ._principal import Principal

__all__ = ["Policy"]

log = logging.getLogger("fabrica.auth")

USER = "user:"
ROLE = "role:"


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
            decision = enforcer.enforce(USER + principal.sub, obj, act) or any(
                enforcer.enforce(ROLE + role, obj, act) for role in principal.roles)
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
            enforcer = casbin.Enforcer(str(model), _NamespacedFile(str(policy)))
            enforcer.enforce("fabrica:check", "*", "get")  # a model that cannot answer fails now
        except Exception as exc:  # casbin raises anything from its parsers: say where
            raise PolicyError(f"cannot load the auth policy from {self.directory}: "
                              f"{type(exc).__name__}: {exc}") from None
        return enforcer


class _NamespacedFile(FileAdapter):  # type: ignore[misc]
    """``policy.csv`` with every subject written as ``user:NAME`` or ``role:NAME``."""

    def load_policy(self, model: Any) -> None:
        super().load_policy(model)
        sections = model.model
        rules = sections["p"]["p"].policy if "p" in sections.get("p", {}) else []
        links = sections["g"]["g"].policy if "g" in sections.get("g", {}) else []
        _namespace(rules, links)


def _namespace(rules: list[list[str]], links: list[list[str]]) -> None:
    """Qualify, in place, the subjects of `rules` (``p`` lines) and both sides of `links`
    (``g`` lines) as users or roles (see the module's docstring)."""
    links = [link for link in links if len(link) >= 2]
    for link in links:
        if link[1].startswith(USER):
            raise PolicyError(f"g, {link[0]}, {link[1]}: a user cannot be given as a role")
    roles = {_role(rule[0]) for rule in rules if rule}
    roles |= {_role(link[1]) for link in links}
    roles |= {link[0] for link in links if link[0].startswith(ROLE)}
    for rule in rules:
        if rule:
            rule[0] = _role(rule[0])
    for link in links:
        link[1] = _role(link[1])
        if not link[0].startswith((USER, ROLE)):
            link[0] = ROLE + link[0] if ROLE + link[0] in roles else USER + link[0]


def _role(name: str) -> str:
    """`name` where the file has a role (a user only when it says ``user:``)."""
    return name if name.startswith((USER, ROLE)) else ROLE + name
