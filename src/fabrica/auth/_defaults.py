"""The policy ``fabrica init --auth`` writes, and the names it uses (no imports: the code
generator reads these without loading the token and policy machinery)."""

from __future__ import annotations

from typing import Final

__all__ = ["ACTIONS", "DEFAULT_MODEL", "DEFAULT_POLICY", "MODEL_FILE", "POLICY_FILE"]

MODEL_FILE: Final = "model.conf"
POLICY_FILE: Final = "policy.csv"
ACTIONS: Final = ("get", "list", "watch", "create", "update", "patch", "delete", "status")

DEFAULT_MODEL: Final = """\
# Casbin RBAC model of this service: read at start and on SIGHUP (see policy.csv).
# A request is (subject, object, action); the server asks once for the token's sub, as
# user:SUB, and once for each of its roles (from the scope and roles claims), as role:ROLE,
# and allows when any is. policy.csv is read into these terms (see its comments).

[request_definition]
r = sub, obj, act

[policy_definition]
p = sub, obj, act

[role_definition]
g = _, _

[policy_effect]
e = some(where (p.eft == allow))

[matchers]
m = g(r.sub, p.sub) && (p.obj == "*" || r.obj == p.obj) && (p.act == "*" || r.act == p.act)
"""

DEFAULT_POLICY: Final = """\
# Who may do what: p, SUBJECT, OBJECT, ACTION
#   SUBJECT  a role from the token's scope/roles claims, or user:SUB for one user's own
#   OBJECT   a collection's path (racks, devices...), events, metrics, or * for all
#   ACTION   get, list, watch, create, update, patch, delete, status (any write to
#            /status), or * for all
# g, USER, ROLE gives a user (a sub) a role; g, ROLE1, ROLE2 makes ROLE1 inherit ROLE2.
# The left of g is a role when a line here uses that name as a role, else a user; write
# user:NAME or role:NAME to say which. Users and roles never mix: a token whose sub is
# "admin" is not the role admin.
# Edit, then reload without a restart: kill -HUP <server pid>.

p, admin, *, *

p, editor, *, get
p, editor, *, list
p, editor, *, watch
p, editor, *, create
p, editor, *, update
p, editor, *, patch
p, editor, *, status

p, viewer, *, get
p, viewer, *, list
p, viewer, *, watch
"""
