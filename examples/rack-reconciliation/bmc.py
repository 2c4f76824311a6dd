from typing import Annotated

from pydantic import Field

from fabrica import Immutable, Model, Resource, Sensitive, Unique


class BMCSpec(Model):
    blade_uid: str = Field(alias="bladeUID")
    # The hardware's serial number: no two BMCs share one, and it never changes once set
    # (empty until someone records it: an empty value holds nothing).
    serial: Annotated[str, Unique(), Immutable()] = ""
    username: str = "admin"
    password: Annotated[str, Sensitive()] = ""  # write-only: never shown to readers


class BMCStatus(Model):
    reachable: bool = False
    health: str = "Unknown"


class BMC(Resource[BMCSpec, BMCStatus], prefix="bmc"):
    """A baseboard management controller: one per blade (shared) or per node (dedicated)."""
