"""pyfabrica: Kubernetes-style resource REST services from a few resource definitions.

Generated projects import only the names exported here and from the public subpackages
(`fabrica.server`, `fabrica.storage`, `fabrica.client`); everything in a module whose name
starts with an underscore is private and may move.
"""

from ._settings import ServiceSettings
from ._version import __version__
from .resource import (
    Condition,
    Immutable,
    Indexed,
    Metadata,
    Model,
    OwnerReference,
    Resource,
    ResourceInfo,
    Sensitive,
    ServedVersion,
    Unique,
    find_condition,
    is_condition_true,
    remove_condition,
    set_condition,
)
from .storage import AlreadyExists, Conflict, NotFound

__all__ = [
    "AlreadyExists",
    "Conflict",
    "NotFound",
    "Condition",
    "Immutable",
    "Indexed",
    "Metadata",
    "Model",
    "OwnerReference",
    "Resource",
    "ResourceInfo",
    "Sensitive",
    "ServedVersion",
    "Unique",
    "ServiceSettings",
    "__version__",
    "find_condition",
    "is_condition_true",
    "remove_condition",
    "set_condition",
]
