"""The resource model: `Model`, `Resource[Spec, Status]`, `ServedVersion`, metadata, conditions
and names."""

from ._api_versions import ApiVersions, ApiVersionTable, ConversionError
from ._conditions import (
    Condition,
    ConditionStatus,
    find_condition,
    is_condition_true,
    remove_condition,
    set_condition,
)
from ._labels import (
    LABEL_KEY_MAX_LENGTH,
    LABEL_KEY_PATTERN,
    LABEL_VALUE_MAX_LENGTH,
    LABEL_VALUE_PATTERN,
    Requirement,
    Selector,
    SelectorError,
    label_key_error,
    label_value_error,
    parse_selector,
)
from ._model import Model
from ._naming import (
    NAME_MAX_LENGTH,
    NAME_PATTERN,
    UID_PATTERN,
    default_prefix,
    is_dns1123_subdomain,
    is_uid,
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
from ._served import ServedVersion, VersionInfo, is_valid_version, version_sort_key
from ._text import InvalidText, check_text, invalid_text_path
from ._time import utcnow

__all__ = [
    "API_VERSION",
    "LABEL_KEY_MAX_LENGTH",
    "LABEL_KEY_PATTERN",
    "LABEL_VALUE_MAX_LENGTH",
    "LABEL_VALUE_PATTERN",
    "NAME_MAX_LENGTH",
    "NAME_PATTERN",
    "SCHEMA_VERSION",
    "ApiVersionTable",
    "ApiVersions",
    "Condition",
    "ConditionStatus",
    "ConversionError",
    "InvalidText",
    "Metadata",
    "Model",
    "OwnerReference",
    "Requirement",
    "Resource",
    "ResourceInfo",
    "Selector",
    "SelectorError",
    "UID_PATTERN",
    "ServedVersion",
    "VersionInfo",
    "check_text",
    "default_prefix",
    "find_condition",
    "invalid_text_path",
    "is_condition_true",
    "is_dns1123_subdomain",
    "is_uid",
    "is_valid_kind",
    "is_valid_plural",
    "is_valid_prefix",
    "is_valid_version",
    "label_key_error",
    "label_value_error",
    "new_uid",
    "parse_selector",
    "pluralize",
    "remove_condition",
    "set_condition",
    "utcnow",
    "version_sort_key",
]
