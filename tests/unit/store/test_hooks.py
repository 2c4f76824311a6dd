"""Admission hooks and dry runs in the store (SPEC section 10): every writer meets them,
inside the write's retry loop, before the compare-and-swap; a refusal, a failure or a hang
stores nothing; a dry run stores and tells nothing."""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import pytest

from fabrica import Hooks, Model, Reject, Resource, WriteContext
from fabrica.storage import Conflict, FileStorage, NotFound
from fabrica.store import (
    SYSTEM_CONTROLLER,
    Change,
    HookFailed,
    ResourceStore,
    acting_as,
    set_roles,
)


class RackSpec(Model):
    slots: int = 4


class RackStatus(Model):
    phase: str = ""


class NodeSpec(Model):
    rack: str = ""
    slot: int = 0
    role: str = ""


class NodeStatus(Model):
    phase: str = ""


class Rack(Resource[RackSpec, RackStatus], prefix="rck"):
    pass


class Node(Resource[NodeSpec, NodeStatus], prefix="nod"):
    pass


class NodeHooks(Hooks[Node]):
    """The check across kinds of SPEC section 10: the rack exists and has a free slot."""

    seen: list[tuple[str, str, tuple[str, ...], bool, str | None]]

    def __init__(self) -> None:
        self.seen = []
        self.deletes: list[str] = []

    async def admit(self, ctx: WriteContext, new: Node, old: Node | None) -> Node | None:
        self.seen.append((ctx.operation, ctx.actor.subject, ctx.actor.roles, ctx.dry_run,
                          old.spec.role if old is not None else None))
        if new.spec.role == "boom":
            raise RuntimeError("secret internals")
        rack = await ctx.get_or_none(Rack, new.spec.rack)
        if rack is None:
            raise Reject(422, f"rack {new.spec.rack!r} does not exist", field="spec.rack")
        if new.spec.slot >= rack.spec.slots:
            raise Reject(409, "no such slot in the rack", field="spec.slot")
        if not new.spec.role:  # defaulting
            return new.model_copy(update={"spec": new.spec.model_copy(
                update={"role": "compute"})})
        return None

    async def admit_delete(self, ctx: WriteContext, old: Node) -> None:
        self.deletes.append(old.name)
        if old.metadata.labels.get("protected") == "yes":
            raise Reject(403, "protected nodes are not deleted")


@pytest.fixture
async def storage(tmp_path):  # type: ignore[no-untyped-def]
    storage = FileStorage(tmp_path / "data")
    yield storage
    await storage.close()


@pytest.fixture
def hooks() -> NodeHooks:
    return NodeHooks()


@pytest.fixture
async def store(storage, hooks):  # type: ignore[no-untyped-def]
    store = ResourceStore(storage, [Rack, Node])
    store.use_hooks([hooks])
    await store.create(Rack, "r1", RackSpec(slots=2))
    return store


@pytest.fixture
def changes(store: ResourceStore) -> list[Change]:
    seen: list[Change] = []

    async def listen(change: Change) -> None:
        seen.append(change)

    store.add_listener(listen)
    return seen


async def test_admit_defaults_and_checks_across_kinds(store: ResourceStore,
                                                      hooks: NodeHooks) -> None:
    node = await store.create(Node, "n1", NodeSpec(rack="r1", slot=1))
    assert node.spec.role == "compute"  # the hook's default is what was stored
    assert (await store.get(Node, "n1")).spec.role == "compute"
    with pytest.raises(Reject) as refused:
        await store.create(Node, "n2", NodeSpec(rack="nope"))
    assert (refused.value.status, refused.value.field) == (422, "spec.rack")
    with pytest.raises(Reject, match="no such slot"):
        await store.create(Node, "n3", NodeSpec(rack="r1", slot=5))
    with pytest.raises(NotFound):
        await store.get(Node, "n2")
    assert [entry[0] for entry in hooks.seen] == ["create", "create", "create"]


async def test_hooks_see_the_operation_the_old_state_and_the_actor(
        store: ResourceStore, hooks: NodeHooks) -> None:
    node = await store.create(Node, "n1", NodeSpec(rack="r1", role="db"))
    token = set_roles(("admin",))
    try:
        await store.modify(Node, "n1", lambda n: n.model_copy(update={"spec": n.spec.model_copy(
            update={"role": "web"})}), action="patched")
    finally:
        from fabrica.store import reset_roles
        reset_roles(token)
    with acting_as(SYSTEM_CONTROLLER):  # a reconciler's write meets the hook too
        node = await store.get(Node, "n1")
        node.status.phase = "Ready"
        await store.update_status(node)
    assert hooks.seen[1:] == [("patch", "anonymous", ("admin",), False, "db"),
                              ("status", SYSTEM_CONTROLLER, (), False, "web")]


async def test_a_hook_that_changes_in_place_without_returning_changes_nothing(
        store: ResourceStore) -> None:
    class Sneaky(Hooks[Rack]):
        async def admit(self, ctx: WriteContext, new: Rack, old: Rack | None) -> Rack | None:
            new.spec.slots = 99
            return None

    store.use_hooks([Sneaky])
    assert (await store.create(Rack, "r2", RackSpec(slots=3))).spec.slots == 3


async def test_a_hook_returning_an_invalid_object_fails_as_a_hook(store: ResourceStore) -> None:
    class Bad(Hooks[Rack]):
        async def admit(self, ctx: WriteContext, new: Rack, old: Rack | None) -> Rack | None:
            return new.model_copy(update={"spec": {"slots": "many"}})

    store.use_hooks([Bad])
    with pytest.raises(HookFailed, match="Bad.admit returned an invalid resource"):
        await store.create(Rack, "r2", RackSpec())


async def test_any_other_exception_is_a_hook_failure_logged_not_shown(
        store: ResourceStore, caplog: pytest.LogCaptureFixture) -> None:
    with pytest.raises(HookFailed) as failed:
        await store.create(Node, "n1", NodeSpec(rack="r1", role="boom"))
    assert str(failed.value) == "hook NodeHooks.admit failed"
    assert "secret internals" in caplog.text  # the traceback is in the log
    with pytest.raises(NotFound):
        await store.get(Node, "n1")


async def test_a_hanging_hook_holds_only_its_own_write(store: ResourceStore) -> None:
    class Hangs(Hooks[Rack]):
        timeout = 0.2

        async def admit(self, ctx: WriteContext, new: Rack, old: Rack | None) -> Rack | None:
            if new.name == "slow":
                await asyncio.Event().wait()  # never set
            return None

    store.use_hooks([Hangs])
    slow = asyncio.create_task(store.create(Rack, "slow", RackSpec()))
    fast = await store.create(Rack, "fast", RackSpec())  # not held up meanwhile
    assert fast.name == "fast" and not slow.done()
    with pytest.raises(HookFailed, match="did not finish within 0.2 s"):
        await slow
    with pytest.raises(NotFound):
        await store.get(Rack, "slow")


async def test_hooks_run_again_on_each_retry_and_a_raise_inside_stores_nothing(
        store: ResourceStore, storage: FileStorage, hooks: NodeHooks) -> None:
    await store.create(Node, "n1", NodeSpec(rack="r1", role="db"))
    calls = 0
    real_update = storage.update

    async def lose_twice(*args: Any, **kwargs: Any) -> Any:
        nonlocal calls
        calls += 1
        if calls <= 2:  # another writer won the compare-and-swap
            current = args[1]
            raise Conflict("nodes", current["metadata"]["uid"], "x", "y")
        return await real_update(*args, **kwargs)

    storage.update = lose_twice  # type: ignore[method-assign]

    def to(role: str) -> Any:
        return lambda n: n.model_copy(update={"spec": n.spec.model_copy(update={"role": role})})

    await store.modify(Node, "n1", to("web"))
    assert [entry[0] for entry in hooks.seen].count("update") == 3  # once per attempt
    calls = 0
    with pytest.raises(HookFailed):
        await store.modify(Node, "n1", to("boom"))
    assert calls == 0 and (await store.get(Node, "n1")).spec.role == "web"


async def test_admit_delete_refuses_and_runs_for_every_deleter(
        store: ResourceStore, hooks: NodeHooks) -> None:
    await store.create(Node, "keep", NodeSpec(rack="r1"), labels={"protected": "yes"})
    await store.create(Node, "go", NodeSpec(rack="r1"))
    with pytest.raises(Reject) as refused:
        await store.delete(Node, "keep")
    assert refused.value.status == 403
    await store.get(Node, "keep")
    with acting_as(SYSTEM_CONTROLLER):
        await store.delete(Node, "go")
    assert hooks.deletes == ["keep", "go"]


async def test_dry_runs_store_and_tell_nothing(store: ResourceStore, hooks: NodeHooks,
                                               changes: list[Change]) -> None:
    would = await store.create(Node, "n1", NodeSpec(rack="r1"), dry_run=True)
    assert would.spec.role == "compute" and would.metadata.resource_version == ""
    with pytest.raises(NotFound):
        await store.get(Node, "n1")
    with pytest.raises(Reject):  # a dry run refuses what the real write would
        await store.create(Node, "n2", NodeSpec(rack="nope"), dry_run=True)
    node = await store.create(Node, "n1", NodeSpec(rack="r1"), finalizers=["x.io/keep"])
    changed = await store.modify(Node, "n1", lambda n: n.model_copy(update={
        "spec": n.spec.model_copy(update={"role": "web"})}), dry_run=True)
    assert changed.spec.role == "web" and changed.metadata.generation == 2
    status = await store.modify(Node, "n1", lambda n: n.model_copy(update={
        "status": NodeStatus(phase="Ready")}), part="status", dry_run=True)
    assert status.status.phase == "Ready"
    marked = await store.delete(Node, "n1", dry_run=True)
    assert marked.metadata.deletion_timestamp is not None
    stored = await store.get(Node, "n1")
    assert stored == node  # untouched
    assert [c.action for c in changes] == ["created"]  # the real create only
    assert [entry[3] for entry in hooks.seen] == [True, True, False, True, True]


def test_reject_takes_only_client_statuses() -> None:
    with pytest.raises(ValueError, match="400, 403, 409, 422"):
        Reject(500, "no")


def test_hooks_name_their_kind_and_one_class_per_kind(storage: FileStorage) -> None:
    with pytest.raises(TypeError, match="naming the kind"):
        class Nameless(Hooks):  # type: ignore[type-arg]
            pass

    store = ResourceStore(storage, [Rack, Node])
    with pytest.raises(ValueError, match="two hook classes for Node"):
        store.use_hooks([NodeHooks, NodeHooks])

    class Other(Resource[RackSpec, RackStatus], prefix="oth"):
        pass

    class OtherHooks(Hooks[Other]):
        pass

    with pytest.raises(ValueError, match="does not hold: Other"):
        store.use_hooks([OtherHooks])
    logging.getLogger(__name__).debug("ok")
