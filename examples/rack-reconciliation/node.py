from pydantic import Field

from fabrica import Model, Resource


class NodeSpec(Model):
    blade_uid: str = Field(alias="bladeUID")
    bmc_uid: str = Field(alias="bmcUID")
    node_number: int = Field(ge=0)


class NodeStatus(Model):
    power_state: str = "Unknown"
    boot_state: str = "Unknown"
    health: str = "Unknown"


class Node(Resource[NodeSpec, NodeStatus], prefix="node"):
    """A compute node on a blade, managed through a BMC."""
