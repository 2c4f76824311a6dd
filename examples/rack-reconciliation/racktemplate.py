from typing import Literal

from pydantic import Field

from fabrica import Condition, Model, Resource


class BladeConfig(Model):
    node_count: int = Field(ge=1, le=8)
    bmc_mode: Literal["shared", "dedicated"] = Field(alias="bmcMode")


class ChassisConfig(Model):
    blade_count: int = Field(ge=1, le=16)
    blade_config: BladeConfig


class RackTemplateSpec(Model):
    chassis_count: int = Field(ge=1, le=42)
    chassis_config: ChassisConfig
    description: str = ""


class RackTemplateStatus(Model):
    usage_count: int = 0
    conditions: list[Condition] = []


class RackTemplate(Resource[RackTemplateSpec, RackTemplateStatus], prefix="rktmpl"):
    """How to build a rack: chassis, blades per chassis, nodes per blade, BMC mode."""
