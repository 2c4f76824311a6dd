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
