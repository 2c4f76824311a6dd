from pydantic import Field

from fabrica import Model, Resource


class BladeSpec(Model):
    chassis_uid: str = Field(alias="chassisUID")
    blade_number: int = Field(ge=0)


class BladeStatus(Model):
    power_state: str = "Unknown"
    health: str = "Unknown"
    node_uids: list[str] = Field([], alias="nodeUIDs")
    bmc_uids: list[str] = Field([], alias="bmcUIDs")


class Blade(Resource[BladeSpec, BladeStatus], prefix="blade"):
    """A blade in a chassis, holding nodes and their BMCs."""
