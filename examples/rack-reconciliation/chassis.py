from pydantic import Field

from fabrica import Model, Resource


class ChassisSpec(Model):
    rack_uid: str = Field(alias="rackUID")
    chassis_number: int = Field(ge=0)


class ChassisStatus(Model):
    power_state: str = "Unknown"
    health: str = "Unknown"
    blade_uids: list[str] = Field([], alias="bladeUIDs")


class Chassis(Resource[ChassisSpec, ChassisStatus], prefix="chas"):
    """An enclosure in a rack, holding blades."""
