"""Policy: the default RBAC roles against every action, custom rules, reloads."""

from __future__ import annotations

from pathlib import Path

import pytest

from fabrica.auth import ACTIONS, DEFAULT_MODEL, DEFAULT_POLICY, Policy, PolicyError, Principal

ALLOWED = {
    "admin": set(ACTIONS),
    "editor": set(ACTIONS) - {"delete"},
    "viewer": {"get", "list", "watch"},
    "stranger": set(),
}


def write(directory: Path, policy: str = DEFAULT_POLICY, model: str = DEFAULT_MODEL) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "model.conf").write_text(model)
    (directory / "policy.csv").write_text(policy)
    return directory


@pytest.fixture(scope="module")
def default_policy(tmp_path_factory: pytest.TempPathFactory) -> Policy:
    return Policy(write(tmp_path_factory.mktemp("auth")))


@pytest.mark.parametrize("role", sorted(ALLOWED))
@pytest.mark.parametrize("obj", ["devices", "racks", "events", "metrics"])
def test_default_roles(default_policy: Policy, role: str, obj: str) -> None:
    for action in ACTIONS:
        allowed = default_policy.allows(Principal("someone", (role,)), obj, action)
        assert allowed is (action in ALLOWED[role]), (role, obj, action)


def test_any_role_or_the_subject_itself_may_grant(tmp_path: Path) -> None:
    policy = Policy(write(tmp_path, DEFAULT_POLICY + "g, alice, admin\np, ops, racks, delete\n"))
    assert policy.allows(Principal("alice"), "devices", "delete")
    assert policy.allows(Principal("bob", ("viewer", "ops")), "racks", "delete")
    assert not policy.allows(Principal("bob", ("viewer", "ops")), "devices", "delete")
    assert not policy.allows(Principal("bob"), "devices", "get")


def test_reload_takes_a_new_policy_and_keeps_the_old_one_when_broken(tmp_path: Path) -> None:
    directory = write(tmp_path)
    policy = Policy(directory)
    viewer = Principal("v", ("viewer",))
    assert not policy.allows(viewer, "devices", "delete")
    (directory / "policy.csv").write_text(DEFAULT_POLICY + "p, viewer, devices, delete\n")
    policy.reload()
    assert policy.allows(viewer, "devices", "delete")
    (directory / "model.conf").write_text("[request_definition]\nr = sub\n")
    with pytest.raises(PolicyError, match="cannot load the auth policy"):
        policy.reload()
    assert policy.allows(viewer, "devices", "delete")
    assert not policy.allows(viewer, "devices", "create")


def test_missing_or_broken_files_are_clear_errors(tmp_path: Path) -> None:
    with pytest.raises(PolicyError, match="model.conf"):
        Policy(tmp_path / "nowhere")
    with pytest.raises(PolicyError, match="cannot load"):
        Policy(write(tmp_path / "bad", model="[matchers]\nm = r.sub == p.sub\n"))


@pytest.mark.parametrize("sub", ["admin", "editor", "viewer", "ops"])
def test_a_subject_named_like_a_role_does_not_get_that_role(tmp_path: Path, sub: str) -> None:
    """Subjects and roles are two namespaces: an issuer whose users pick their own ``sub``
    (``admin``) gives them no role that way; only scope/roles claims and ``g`` lines do."""
    policy = Policy(write(tmp_path, DEFAULT_POLICY + "p, ops, racks, delete\n"
                                                     "g, editor, viewer\n"))
    for action in ACTIONS:
        for obj in ("devices", "racks", "events", "metrics"):
            assert not policy.allows(Principal(sub), obj, action), (sub, obj, action)


def test_users_and_roles_in_the_policy_file(tmp_path: Path) -> None:
    """The left of ``g`` is a role when the policy uses that name as a role elsewhere, else
    a user; ``user:`` and ``role:`` say which outright. A user's own rights: ``p, user:NAME``."""
    policy = Policy(write(tmp_path, DEFAULT_POLICY + (
        "g, alice, admin\n"             # alice: a user (no rule names a role alice)
        "g, editor, lister\n"           # editor: a role (p, editor, ...), inherits lister
        "p, lister, devices, delete\n"
        "g, role:ops, viewer\n"         # ops: a role with no rules of its own
        "g, user:carol, editor\n"
        "p, user:dave, racks, delete\n"
        "p, erin, racks, delete\n"      # erin: a role, whatever the name suggests
    )))
    assert policy.allows(Principal("alice"), "devices", "delete")
    assert not policy.allows(Principal("bob", ("alice",)), "devices", "get")
    assert policy.allows(Principal("bob", ("editor",)), "devices", "delete")
    assert policy.allows(Principal("bob", ("ops",)), "devices", "get")
    assert not policy.allows(Principal("ops"), "devices", "get")
    assert policy.allows(Principal("carol"), "devices", "create")
    assert not policy.allows(Principal("bob", ("carol",)), "devices", "get")
    assert policy.allows(Principal("dave"), "racks", "delete")
    assert not policy.allows(Principal("bob", ("dave",)), "racks", "delete")
    assert not policy.allows(Principal("erin"), "racks", "delete")
    assert policy.allows(Principal("bob", ("erin",)), "racks", "delete")
    # The namespaces themselves cannot be reached from a token: a sub "role:admin" is a
    # user of that name, a role "user:dave" a role of that name.
    assert not policy.allows(Principal("role:admin"), "devices", "get")
    assert not policy.allows(Principal("bob", ("user:dave",)), "racks", "delete")


def test_a_user_cannot_be_given_as_a_role(tmp_path: Path) -> None:
    with pytest.raises(PolicyError, match="user:alice"):
        Policy(write(tmp_path, DEFAULT_POLICY + "g, bob, user:alice\n"))
