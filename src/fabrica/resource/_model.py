"""`Model`: the pydantic base for every Spec and Status.

JSON names are camelCase (the Kubernetes convention) while Python stays snake_case; an
explicit ``Field(alias=...)`` wins over the generated name, and input is accepted under either
name so hand-written JSON and Python keyword arguments both work.
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict
from pydantic.alias_generators import to_camel

__all__ = ["Model"]


class Model(BaseModel):
    model_config = ConfigDict(
        alias_generator=to_camel,
        validate_by_name=True,
        validate_by_alias=True,
        serialize_by_alias=True,
    )
