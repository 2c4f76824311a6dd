"""``?dryRun=All`` (SPEC section 10): a write that runs everything up to the
compare-and-swap (validation, metadata rules, hooks with ``ctx.dry_run``) and answers what
would be stored, storing and publishing nothing. Kubernetes' parameter, with its one value.
"""

from __future__ import annotations

from starlette.datastructures import QueryParams

from ._errors import APIError

__all__ = ["DRY_RUN_PARAM", "parse_dry_run"]

DRY_RUN_PARAM = "dryRun"
_ALL = "All"


def parse_dry_run(query: QueryParams) -> bool:
    """Whether the request asks for a dry run; any value but ``All`` is a 400 (a typo must
    not turn a rehearsal into a real write)."""
    values = query.getlist(DRY_RUN_PARAM)
    if not values:
        return False
    wrong = [value for value in values if value != _ALL]
    if wrong:
        raise APIError(400, f"invalid dryRun {wrong[0][:64]!r}: the only value is All",
                       [{"field": DRY_RUN_PARAM, "message": "must be All"}])
    return True
