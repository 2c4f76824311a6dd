"""pyfabrica: Kubernetes-style resource REST services from a few resource definitions.

Generated projects import only the names exported here and from the public subpackages
(`fabrica.server`, `fabrica.storage`, `fabrica.client`); everything in a module whose name
starts with an underscore is private and may move.
"""

from typing import TYPE_CHECKING, Any

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

if TYPE_CHECKING:
    from .store import Hooks, Reject, WriteContext

__all__ = [
    "AlreadyExists",
    "Conflict",
    "NotFound",
    "Condition",
    "Hooks",
    "Immutable",
    "Indexed",
    "Metadata",
    "Model",
    "OwnerReference",
    "Reject",
    "Resource",
    "ResourceInfo",
    "Sensitive",
    "ServedVersion",
    "Unique",
    "ServiceSettings",
    "WriteContext",
    "__version__",
    "find_condition",
    "is_condition_true",
    "remove_condition",
    "set_condition",
]


_FROM_STORE = frozenset({"Hooks", "Reject", "WriteContext"})


def __getattr__(name: str) -> Any:
    """The hook names load the store on first use: resource definitions, which clients
    import too, stay as light as before."""
    if name in _FROM_STORE:
        from . import store

        return getattr(store, name)
    raise AttributeError(f"module 'fabrica' has no attribute {name!r}")
