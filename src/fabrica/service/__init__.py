"""The service runtime: `Service` assembles a service's parts and starts and stops them in
order, for every role; `ServiceOptions` holds every ``serve`` option.

Nothing here speaks HTTP: `fabrica.server` mounts the API on a `Service`. Besides the
service: the outbox relay that publishes what SQL writes recorded (`OutboxRelay`), the
``/ready`` checks (`Readiness`) and the ordered stop within a time budget (`stop_in_order`).
"""

from ._options import (
    DEFAULT_MAX_BODY_SIZE,
    DEFAULT_STORAGE_TIMEOUT,
    ROLES,
    OptionError,
    Role,
    ServiceOptions,
    default_instance,
)
from ._ready import DEGRADED, Readiness
from ._relay import OutboxRelay
from ._service import Service
from ._stopping import GRACEFUL_SHUTDOWN, STOP_BUDGET, stop_in_order

__all__ = [
    "DEFAULT_MAX_BODY_SIZE",
    "DEFAULT_STORAGE_TIMEOUT",
    "DEGRADED",
    "GRACEFUL_SHUTDOWN",
    "ROLES",
    "STOP_BUDGET",
    "OptionError",
    "OutboxRelay",
    "Readiness",
    "Role",
    "Service",
    "ServiceOptions",
    "default_instance",
    "stop_in_order",
]
