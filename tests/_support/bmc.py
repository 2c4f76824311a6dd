"""A BMC kind with SPEC section 10's field markers, for the tests of unique, immutable and
indexed fields (importable by name, so that other processes can load it too)."""

from __future__ import annotations

from typing import Annotated

from pydantic import Field

from fabrica import Immutable, Indexed, Model, Resource, Unique


class BMCSpec(Model):
    serial: Annotated[str, Unique(), Immutable()] = ""
    mac: Annotated[str, Unique(), Indexed()] = ""
    rack_uid: Annotated[str, Indexed()] = Field("", alias="rackUID")
    slot: int = 0


class BMCStatus(Model):
    phase: str = ""


class BMC(Resource[BMCSpec, BMCStatus], prefix="bmc", unique=[("rackUID", "slot")]):
    pass


class OldBMCSpec(Model):
    """The spec as an earlier release declared it: nothing unique."""

    serial: str = ""
    mac: str = ""


class OldBMC(Resource[OldBMCSpec, BMCStatus], prefix="bmc", plural="bmcs"):
    pass
