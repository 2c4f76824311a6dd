"""Which `.fabrica.yaml` features this release records but cannot run yet.

`NOT_YET_AVAILABLE` is the one list to shrink as features land: `fabrica init` and
`fabrica generate` report every enabled feature named in it, so a choice is stored and
reported, never silently ignored.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Final

from .._settings import ServiceSettings

__all__ = ["NOT_YET_AVAILABLE", "pending_features"]

NOT_YET_AVAILABLE: Final[tuple[str, ...]] = ()

_ENABLED: Final[dict[str, Callable[[ServiceSettings], bool]]] = {}


def pending_features(settings: ServiceSettings) -> list[str]:
    """The features `settings` turns on that this release does not provide yet."""
    return [name for name in NOT_YET_AVAILABLE if _ENABLED[name](settings)]
