from typing import Literal

from pydantic import Field

from fabrica import Model, Resource


class DeviceSpec(Model):
    type: Literal["server", "switch", "router", "storage"]
    ip_address: str = Field(alias="ipAddress")
    port: int = Field(443, ge=1, le=65535)
    tags: dict[str, str] = {}


class DeviceStatus(Model):
    health: str = "unknown"
    error_count: int = Field(0, ge=0)


class Device(Resource[DeviceSpec, DeviceStatus], prefix="dev"):
    """A network device."""
