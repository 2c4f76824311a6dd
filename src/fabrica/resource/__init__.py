"""The resource model: `Model`, `Resource[Spec, Status]`, metadata, conditions and names."""

from ._conditions import (
    Condition,
    ConditionStatus,
    find_condition,
    is_condition_true,
    remove_condition,
    set_condition,
)
from ._labels import (
    Requirement,
    Selector,
    SelectorError,
    label_key_error,
    label_value_error,
    parse_selector,
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
from ._resource import (
    API_VERSION,
    SCHEMA_VERSION,
    Metadata,
    OwnerReference,
    Resource,
    ResourceInfo,
    new_uid,
)
from ._time import utcnow

__all__ = [
    "API_VERSION",
    "SCHEMA_VERSION",
    "Condition",
    "ConditionStatus",
    "Metadata",
    "Model",
    "OwnerReference",
    "Requirement",
    "Resource",
    "ResourceInfo",
    "Selector",
    "SelectorError",
    "default_prefix",
    "find_condition",
    "is_condition_true",
    "is_dns1123_subdomain",
    "is_valid_kind",
    "is_valid_plural",
    "is_valid_prefix",
    "label_key_error",
    "label_value_error",
    "new_uid",
    "parse_selector",
    "pluralize",
    "remove_condition",
    "set_condition",
    "utcnow",
]
