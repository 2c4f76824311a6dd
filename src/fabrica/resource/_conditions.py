"""Kubernetes-style status conditions.

`lastTransitionTime` records when `status` last *changed*; re-asserting the same status with
a new reason or message updates those fields but keeps the transition time, exactly like
``meta.SetStatusCondition`` in apimachinery.
"""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from ._model import Model
from ._time import utcnow

__all__ = [
    "Condition",
    "ConditionStatus",
    "find_condition",
    "is_condition_true",
    "remove_condition",
    "set_condition",
]

ConditionStatus = Literal["True", "False", "Unknown"]


class Condition(Model):
    type: str
    status: ConditionStatus
    reason: str = ""
    message: str = ""
    last_transition_time: datetime
    observed_generation: int = 0


def find_condition(conditions: list[Condition], type: str) -> Condition | None:
    return next((c for c in conditions if c.type == type), None)


def is_condition_true(conditions: list[Condition], type: str) -> bool:
    found = find_condition(conditions, type)
    return found is not None and found.status == "True"


def set_condition(
    conditions: list[Condition],
    type: str,
    status: ConditionStatus | bool,
    reason: str = "",
    message: str = "",
    observed_generation: int = 0,
    now: datetime | None = None,
) -> bool:
    """Add or update condition `type` in place; return True when its status transitioned.

    A new condition counts as a transition. Booleans are accepted for `status`.
    """
    if isinstance(status, bool):
        status = "True" if status else "False"
    existing = find_condition(conditions, type)
    if existing is None:
        conditions.append(
            Condition(
                type=type,
                status=status,
                reason=reason,
                message=message,
                last_transition_time=now or utcnow(),
                observed_generation=observed_generation,
            )
        )
        return True
    transitioned = existing.status != status
    if transitioned:
        existing.status = status
        existing.last_transition_time = now or utcnow()
    existing.reason = reason
    existing.message = message
    existing.observed_generation = observed_generation
    return transitioned


def remove_condition(conditions: list[Condition], type: str) -> bool:
    before = len(conditions)
    conditions[:] = [c for c in conditions if c.type != type]
    return len(conditions) != before
