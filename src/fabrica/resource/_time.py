from __future__ import annotations

from datetime import UTC, datetime

__all__ = ["utcnow"]


def utcnow() -> datetime:
    """Timezone-aware UTC now; the default clock of everything that stamps times."""
    return datetime.now(UTC)
