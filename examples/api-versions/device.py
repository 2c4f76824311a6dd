"""Device, API version v2: ``ipAddress`` became ``address``, and ``location`` is new.

The storage version is v2 now (``version="v2"``); device_v1.py keeps serving v1, so clients
written against v1 keep working (see README.md).
"""

from typing import Literal

from pydantic import Field

from fabrica import Model, Resource


class DeviceSpec(Model):
    type: Literal["server", "switch", "router", "storage"]
    address: str  # v1: ipAddress
    port: int = Field(443, ge=1, le=65535)
    tags: dict[str, str] = {}
    location: str = ""  # new in v2: v1 clients cannot see it, and never erase it


class DeviceStatus(Model):
    health: str = "unknown"
    error_count: int = Field(0, ge=0)


class Device(Resource[DeviceSpec, DeviceStatus], prefix="dev", version="v2"):
    """A network device."""
