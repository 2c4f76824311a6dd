"""Rack reconciliation: provision a rack's chassis, blades, BMCs and nodes from its template.

Level-triggered and idempotent: every run computes the children the template asks for,
under deterministic names (``RACK-c0``, ``RACK-c0-b1``, ``RACK-c0-b1-n2``, ``RACK-c0-b1-bmc``),
lists what exists, creates only what is missing and deletes what is no longer wanted. So a
server killed at any moment ends, after its restart, with exactly the right children; and
changing the template reshapes the rack. Children carry an owner reference (rack → chassis
→ blade → node/BMC), so deleting the rack deletes everything it provisioned.

The first time a rack is Ready the reconciler emits ``io.fabrica.rack.provisioned`` and
records ``status.provisionedAt`` in the status saved right after; a rack that has it never
emits again (spec changes, requeues, restarts). A crash between the two re-sends the event
on the next run with the same event id: at-least-once, never lost (see the README).
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import partial
from typing import Any

from fabrica import AlreadyExists, Resource, set_condition
from fabrica.reconcile import Result
from fabrica.store import CreateManyError

from ..resources.blade import Blade, BladeSpec
from ..resources.bmc import BMC, BMCSpec
from ..resources.chassis import Chassis, ChassisSpec
from ..resources.node import Node, NodeSpec
from ..resources.rack import Rack
from ..resources.racktemplate import RackTemplate
from .rack_reconciler_generated import RackReconcilerBase

RACK_UID_LABEL = "fabrica.io/rack-uid"
PARALLEL_CREATES = 32
TEMPLATE_RETRY_SECONDS = 30.0


@dataclass
class _BladePlan:
    name: str
    number: int
    bmcs: list[str]  # BMC names: one (shared) or one per node (dedicated)
    nodes: list[tuple[str, int, str]] = field(default_factory=list)  # name, number, BMC name


@dataclass
class _ChassisPlan:
    name: str
    number: int
    blades: list[_BladePlan]


class RackReconciler(RackReconcilerBase):
    """Drives each Rack from its template (desired) to provisioned hardware (observed)."""

    async def reconcile_rack(self, rack: Rack) -> Result | None:
        template = await self.client.get_or_none(RackTemplate, rack.spec.template_uid)
        if template is None:
            message = f"RackTemplate {rack.spec.template_uid!r} not found"
            rack.status.phase, rack.status.message = "Error", message
            set_condition(rack.status.conditions, "Ready", False, "TemplateNotFound", message,
                          rack.metadata.generation)
            return Result(requeue_after=TEMPLATE_RETRY_SECONDS)  # it may be created later

        plan = _plan(rack.name, template)
        selector = {RACK_UID_LABEL: rack.uid}
        chassis = await self._existing(Chassis, selector)
        blades = await self._existing(Blade, selector)
        bmcs = await self._existing(BMC, selector)
        nodes = await self._existing(Node, selector)
        wanted_total = sum(1 + len(b.bmcs) + len(b.nodes) for c in plan for b in c.blades) \
            + len(plan)
        if len(chassis) + len(blades) + len(bmcs) + len(nodes) < wanted_total:
            if rack.status.phase != "Provisioning":
                rack.status.phase, rack.status.message = "Provisioning", "creating children"
                rack = await self.client.update_status(rack)

        labels = {RACK_UID_LABEL: rack.uid}
        await self._provision(rack, plan, labels, chassis, blades, bmcs, nodes)
        await self._remove_unwanted(plan, chassis, blades, bmcs, nodes)

        status = rack.status
        status.phase = "Ready"
        status.message = (f"{len(plan)} chassis, {len(blades)} blades, {len(nodes)} nodes, "
                          f"{len(bmcs)} BMCs from template {template.name}")
        status.chassis_uids = [chassis[c.name].uid for c in plan]
        status.total_chassis, status.total_blades = len(chassis), len(blades)
        status.total_nodes, status.total_bmcs = len(nodes), len(bmcs)
        if status.provisioned_at is None:  # first time Ready: say so, once
            status.provisioned_at = datetime.now(UTC)
            self.emit(rack, "provisioned", data={
                "template": template.name, "chassis": len(chassis), "blades": len(blades),
                "nodes": len(nodes), "bmcs": len(bmcs)})
        return None  # the generated base records Ready, saves status and requeues

    async def _provision(
        self, rack: Rack, plan: list[_ChassisPlan], labels: dict[str, str],
        chassis: dict[str, Chassis], blades: dict[str, Blade], bmcs: dict[str, BMC],
        nodes: dict[str, Node],
    ) -> None:
        """The missing children, a level at a time (each names its parent's uid), each
        level in one `create_many`: one transaction on SQL, one batched write on files."""
        await self._create_all(chassis, Chassis, [
            (c.name, ChassisSpec(rack_uid=rack.uid, chassis_number=c.number), rack)
            for c in plan if c.name not in chassis], labels)
        await self._create_all(blades, Blade, [
            (b.name, BladeSpec(chassis_uid=chassis[c.name].uid, blade_number=b.number),
             chassis[c.name])
            for c in plan for b in c.blades if b.name not in blades], labels)
        await self._create_all(bmcs, BMC, [
            (name, BMCSpec(blade_uid=blades[b.name].uid), blades[b.name])
            for c in plan for b in c.blades for name in b.bmcs if name not in bmcs], labels)
        await self._create_all(nodes, Node, [
            (name, NodeSpec(blade_uid=blades[b.name].uid, bmc_uid=bmcs[bmc].uid,
                            node_number=number), blades[b.name])
            for c in plan for b in c.blades for name, number, bmc in b.nodes
            if name not in nodes], labels)
        boxes: list[Chassis] = []
        changed: list[Blade] = []
        for chassis_plan in plan:
            self._record_children(chassis[chassis_plan.name], chassis_plan, blades, bmcs,
                                  nodes, boxes, changed)
        await self.client.update_status_many(boxes)
        await self.client.update_status_many(changed)
        rack.status.total_chassis = len(chassis)
        rack.status.total_blades, rack.status.total_bmcs = len(blades), len(bmcs)
        rack.status.total_nodes = len(nodes)

    async def _create_all(self, into: dict[str, Any], kind: type[Any],
                          wanted: list[tuple[str, Any, Resource[Any, Any]]],
                          labels: dict[str, str]) -> None:
        """Create `wanted` (name, spec, owner) in one step. A name taken meanwhile (a
        racing writer, a child of an earlier rack of that name) makes the whole batch go
        back: then each is created on its own, which sorts out who holds which name."""
        if not wanted:
            return
        children = [self.client.new(kind, name, spec, labels=labels, owner=owner)
                    for name, spec, owner in wanted]
        try:
            created = await self.client.create_many(children)
        except CreateManyError as refused:
            if not isinstance(refused.error, AlreadyExists):
                raise
            await _limited(partial(self._create_into, into, kind, name, spec, labels, owner)
                           for name, spec, owner in wanted)
            return
        into.update((child.name, child) for child in created)

    def _record_children(
        self, box: Chassis, plan: _ChassisPlan, blades: dict[str, Blade],
        bmcs: dict[str, BMC], nodes: dict[str, Node], boxes: list[Chassis],
        changed: list[Blade],
    ) -> None:
        """Chassis list their blades, blades their nodes and BMCs (observed state): those
        whose status must change go to `boxes` and `changed`, for the caller to write each
        kind in one step (one transaction on SQL, not one a resource)."""
        blade_uids = [blades[b.name].uid for b in plan.blades]
        if box.status.blade_uids != blade_uids:
            box.status.blade_uids = blade_uids
            boxes.append(box)
        for b in plan.blades:
            blade = blades[b.name]
            node_uids = [nodes[name].uid for name, _, _ in b.nodes]
            bmc_uids = [bmcs[name].uid for name in b.bmcs]
            if blade.status.node_uids != node_uids or blade.status.bmc_uids != bmc_uids:
                blade.status.node_uids, blade.status.bmc_uids = node_uids, bmc_uids
                changed.append(blade)

    async def _remove_unwanted(
        self, plan: list[_ChassisPlan], chassis: dict[str, Chassis], blades: dict[str, Blade],
        bmcs: dict[str, BMC], nodes: dict[str, Node],
    ) -> None:
        """A smaller template shrinks the rack: delete what it no longer asks for."""
        wanted = {c.name for c in plan}
        wanted |= {b.name for c in plan for b in c.blades}
        wanted |= {n for c in plan for b in c.blades for n in b.bmcs}
        wanted |= {n for c in plan for b in c.blades for n, _, _ in b.nodes}
        for kind, existing in ((Node, nodes), (BMC, bmcs), (Blade, blades), (Chassis, chassis)):
            for name in [n for n in existing if n not in wanted]:
                await self.client.delete(kind, existing.pop(name).uid)

    async def _existing(self, kind: type[Any], labels: dict[str, str]) -> dict[str, Any]:
        return {obj.name: obj for obj in await self.client.list(kind, labels=labels)}

    async def _create_into(self, into: dict[str, Any], kind: type[Any], name: str, spec: Any,
                           labels: dict[str, str], owner: Resource[Any, Any]) -> None:
        into[name] = await self._create(kind, name, spec, labels, owner)

    async def _create(self, kind: type[Any], name: str, spec: Any, labels: dict[str, str],
                      owner: Resource[Any, Any]) -> Any:
        # Only children missing from the listing get here, so create first; the name
        # may still exist if a create raced us or an old owner's child lingers.
        try:
            return await self.client.create(kind, name, spec, labels=labels, owner=owner)
        except AlreadyExists:
            child = await self.client.get(kind, name)
        if not child.metadata.is_owned_by(owner.uid):
            # A rack deleted and re-created under the same name: its old children are still
            # being garbage-collected. Fail; the retry with backoff finds the name free.
            raise RuntimeError(f"{kind.__name__} {name} still belongs to an earlier owner")
        return child


def _plan(rack_name: str, template: RackTemplate) -> list[_ChassisPlan]:
    spec = template.spec
    blade_config = spec.chassis_config.blade_config
    shared = blade_config.bmc_mode == "shared"
    chassis = []
    for c in range(spec.chassis_count):
        blades = []
        for b in range(spec.chassis_config.blade_count):
            blade_name = f"{rack_name}-c{c}-b{b}"
            plan = _BladePlan(blade_name, b, [f"{blade_name}-bmc"] if shared else [])
            for n in range(blade_config.node_count):
                node_name = f"{blade_name}-n{n}"
                if not shared:
                    plan.bmcs.append(f"{node_name}-bmc")
                plan.nodes.append((node_name, n, plan.bmcs[0] if shared else plan.bmcs[-1]))
            blades.append(plan)
        chassis.append(_ChassisPlan(f"{rack_name}-c{c}", c, blades))
    return chassis


async def _limited(
    work: Iterable[Callable[[], Awaitable[Any]]], limit: int = PARALLEL_CREATES
) -> None:
    """Run `work` with at most `limit` in flight (storage latency overlaps; order is free).
    The first failure cancels the rest and is raised as it is."""
    semaphore = asyncio.Semaphore(limit)

    async def one(item: Callable[[], Awaitable[Any]]) -> None:
        async with semaphore:
            await item()

    try:
        async with asyncio.TaskGroup() as group:
            for item in work:
                group.create_task(one(item))
    except ExceptionGroup as failures:
        raise failures.exceptions[0] from None
