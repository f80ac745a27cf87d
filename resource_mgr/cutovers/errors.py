"""The refusals of cutover use cases, with the stable codes of API.md."""
from __future__ import annotations

from typing import Any

from resource_mgr.errors import Conflict, NotFound


def wrong_state(cutover: Any, action: str, allowed: str) -> Conflict:
    """409 conflict: a transition from the wrong state."""
    return Conflict(f"cannot {action} cutover {cutover.id}: it is {cutover.state.value}; allowed only from {allowed}",
                    field="state", state=cutover.state.value)


def not_found(cutover_id: str) -> NotFound:
    return NotFound(f"no cutover with id {cutover_id}", field="id")


def no_longer_valid(cutover: Any, errors: list[dict[str, Any]]) -> Conflict:
    first = errors[0]
    return Conflict(f"cutover {cutover.id} cannot be locked: {len(errors)} row(s) no longer fit, first row "
                    f"{first['row']} ({first['code']}): {first['reason']}", field="mapping", errors=errors[:100])
