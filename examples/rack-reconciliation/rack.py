from datetime import datetime

from pydantic import Field

from fabrica import Condition, Model, Resource


class RackSpec(Model):
    template_uid: str = Field(alias="templateUID", min_length=1)
    location: str = ""
    datacenter: str = ""
    row: str = ""
    position: str = ""


class RackStatus(Model):
    phase: str = "Pending"  # Pending, Provisioning, Ready, Error
    message: str = ""
    chassis_uids: list[str] = Field([], alias="chassisUIDs")
    total_chassis: int = 0
    total_blades: int = 0
    total_nodes: int = 0
    total_bmcs: int = Field(0, alias="totalBMCs")
    # When it was first Ready; also the record that `provisioned` was emitted (once per rack).
    provisioned_at: datetime | None = None
    observed_generation: int = 0
    conditions: list[Condition] = []


class Rack(Resource[RackSpec, RackStatus], prefix="rack"):
    """A physical rack, provisioned from a RackTemplate by the rack reconciler."""
