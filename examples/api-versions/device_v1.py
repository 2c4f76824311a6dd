"""Device as API version v1 shows it: still served (deprecated) after device.py moved on to
``class Device(Resource[DeviceSpec, DeviceStatus], prefix="dev", version="v2")``.

Written by ``fabrica add version Device v1 --deprecated`` before device.py changed, then the
two conversions were edited for the rename; Status did not change, so it needs none.
"""

from typing import Literal

from pydantic import Field

from fabrica import Model, ServedVersion

from .device import Device, DeviceSpec, DeviceStatus


class DeviceV1Spec(Model):
    type: Literal["server", "switch", "router", "storage"]
    ip_address: str = Field(alias="ipAddress")
    port: int = Field(443, ge=1, le=65535)
    tags: dict[str, str] = {}


class DeviceV1(ServedVersion[DeviceV1Spec, DeviceStatus], of=Device, version="v1",
               deprecated=True):
    """Device v1: ipAddress instead of address, and no location."""

    @staticmethod
    def spec_to_storage(spec: DeviceV1Spec) -> DeviceSpec:
        # location is not in v1: the server keeps the stored value on writes through v1
        return DeviceSpec(type=spec.type, address=spec.ip_address, port=spec.port,
                          tags=spec.tags)

    @staticmethod
    def spec_from_storage(spec: DeviceSpec) -> DeviceV1Spec:
        return DeviceV1Spec(type=spec.type, ip_address=spec.address, port=spec.port,
                            tags=spec.tags)
