"""Who is asking, what they may do, and which local networks they may touch."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlalchemy import ColumnElement, true

from resource_mgr.errors import Forbidden, NotFound
from resource_mgr.states import Role


@dataclass(frozen=True)
class Principal:
    name: str  # "user:alice", "system:bss": written into every history row
    roles: frozenset[Role]
    # Local network ids this principal may touch; None means every local network.
    local_network_ids: frozenset[str] | None
    token_id: str | None = None

    def has_any(self, roles: frozenset[Role] | set[Role]) -> bool:
        return bool(self.roles & set(roles))

    def require_any(self, roles: frozenset[Role] | set[Role], action: str = "this") -> None:
        if not self.has_any(roles):
            raise Forbidden(f"{action} needs one of the roles {', '.join(sorted(r.value for r in roles))}; "
                            f"{self.name} has {', '.join(sorted(r.value for r in self.roles)) or 'none'}")

    def sees(self, local_network_id: str | None) -> bool:
        return self.local_network_ids is None or local_network_id in self.local_network_ids

    def check_scope(self, local_network_id: str | None, what: str = "resource", id_: Any = "") -> None:
        """Refuse a resource outside the principal's local networks as if it did not exist, so
        guessing ids tells nothing about another city's inventory."""
        if not self.sees(local_network_id):
            raise NotFound(f"no {what} with id {id_}")

    def check_write_scope(self, local_network_id: str | None) -> None:
        if not self.sees(local_network_id):
            raise Forbidden("that local network is outside your scope", field="local_network")

    def scope_filter(self, column: Any) -> ColumnElement[bool]:
        """A WHERE clause keeping only rows in the principal's local networks."""
        if self.local_network_ids is None:
            return true()
        return column.in_(sorted(self.local_network_ids))


SYSTEM = Principal(name="system", roles=frozenset(Role), local_network_ids=None)
