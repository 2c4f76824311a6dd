from pydantic import Field

from fabrica import Model, Resource


class BMCSpec(Model):
    blade_uid: str = Field(alias="bladeUID")


class BMCStatus(Model):
    reachable: bool = False
    health: str = "Unknown"


class BMC(Resource[BMCSpec, BMCStatus], prefix="bmc"):
    """A baseboard management controller: one per blade (shared) or per node (dedicated)."""
