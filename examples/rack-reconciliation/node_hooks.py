"""Admission hooks for Node (copied to ``rack_inventory/hooks/node.py``): a check across kinds
that runs before any node is stored, whoever writes it (the API or the rack reconciler)."""

from fabrica import Hooks, Reject, WriteContext

from ..resources.bmc import BMC
from ..resources.node import Node


class NodeHooks(Hooks[Node]):
    async def admit(self, ctx: WriteContext, new: Node, old: Node | None) -> Node | None:
        """A node is managed through a BMC of its own blade: that BMC must exist."""
        if old is not None and new.spec.bmc_uid == old.spec.bmc_uid \
                and new.spec.blade_uid == old.spec.blade_uid:
            return None  # (a status write, or a spec change that moves nothing)
        bmc = await ctx.get_or_none(BMC, new.spec.bmc_uid)
        if bmc is None:
            raise Reject(422, f"BMC {new.spec.bmc_uid!r} does not exist", field="spec.bmcUID")
        if bmc.spec.blade_uid != new.spec.blade_uid:
            raise Reject(422, f"BMC {bmc.name} manages another blade's nodes",
                         field="spec.bmcUID")
        return None
