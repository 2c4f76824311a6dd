"""The resource model: `Model`, `Resource[Spec, Status]`, metadata, conditions and names."""

from ._conditions import (
    Condition,
    ConditionStatus,
    find_condition,
    is_condition_true,
    remove_condition,
    set_condition,
)
from ._model import Model
from ._naming import (
    default_prefix,
    is_dns1123_subdomain,
    is_valid_kind,
    is_valid_plural,
    is_valid_prefix,
    pluralize,
)
from ._resource import API_VERSION, SCHEMA_VERSION, Metadata, Resource, ResourceInfo, new_uid
from ._time import utcnow

__all__ = [
    "API_VERSION",
    "SCHEMA_VERSION",
    "Condition",
    "ConditionStatus",
    "Metadata",
    "Model",
    "Resource",
    "ResourceInfo",
    "default_prefix",
    "find_condition",
    "is_condition_true",
    "is_dns1123_subdomain",
    "is_valid_kind",
    "is_valid_plural",
    "is_valid_prefix",
    "new_uid",
    "pluralize",
    "remove_condition",
    "set_condition",
    "utcnow",
]
