"""The ledger of a bulk load, derived in memory before any row is written.

The importer cannot afford an ORM object per unit, so it hands the occupations and holds it
reads to `Derivation`, which applies the rules of `Unit` on plain slots (an exclusive unit has
one holder; a shared unit carries at most `capacity` services and holds; no hold on an occupied
exclusive unit) and gives back the columns and rows to write: `unit_columns` for the unit row
(satisfying the unit CHECK constraints), `shared_uses` for the `shared_use` rows.
"""
from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterator
from datetime import datetime

from resource_mgr.occupancy.models import shared_occupancy, shared_room
from resource_mgr.states import Occupancy

FIRST_VERSION = 1  # the version counter of a unit row as first written


class Derivation:
    def __init__(self) -> None:
        self._service: dict[int, tuple[str, str]] = {}  # exclusive slot -> (service id, label)
        self._users: dict[int, list[str]] = defaultdict(list)  # shared slot -> service ids
        self._reserved: dict[int, tuple[str, datetime]] = {}  # exclusive slot -> (reservation, until)
        self._held: dict[int, int] = defaultdict(int)  # shared slot -> live holds

    # -- checking, then taking ----------------------------------------------------------------

    def refuse_occupy(self, slot: int, capacity: int) -> str | None:
        """Why one more service cannot occupy the unit, or None."""
        if capacity == 1:
            taken = self._service.get(slot)
            return None if taken is None else f"exclusive unit already occupied by service {taken[1]!r}"
        if len(self._users.get(slot, ())) + 1 > capacity:
            return f"capacity exceeded: the unit carries at most {capacity} services"
        return None

    def occupy(self, slot: int, capacity: int, service_id: str, label: str) -> None:
        if capacity == 1:
            self._service[slot] = (service_id, label)
        else:
            self._users[slot].append(service_id)

    def refuse_hold(self, slot: int, capacity: int) -> str | None:
        """Why a reservation cannot hold the unit, or None."""
        if capacity == 1:
            if slot in self._service:
                return f"the unit is occupied by service {self._service[slot][1]!r}"
            if slot in self._reserved:
                return f"the unit is already pre-occupied by {self._reserved[slot][0]!r}"
            return None
        if shared_room(capacity, len(self._users.get(slot, ())), self._held.get(slot, 0)) == 0:
            return f"capacity exceeded: the unit carries at most {capacity} services and holds"
        return None

    def hold(self, slot: int, capacity: int, reservation_id: str, until: datetime) -> None:
        if capacity == 1:
            self._reserved[slot] = (reservation_id, until)
        else:
            self._held[slot] += 1

    # -- what to write --------------------------------------------------------------------------

    def unit_columns(self, slot: int | None, capacity: int
                     ) -> tuple[str, str | None, datetime | None, str | None, int]:
        """(occupancy, reservation_id, preoccupied_until, service_id, used) of a unit row."""
        if slot is None:
            return Occupancy.FREE.value, None, None, None, 0
        if capacity == 1:
            taken = self._service.get(slot)
            if taken is not None:
                return Occupancy.OCCUPIED.value, None, None, taken[0], 0
            held = self._reserved.get(slot)
            if held is not None:
                return Occupancy.PREOCCUPIED.value, held[0], held[1], None, 0
            return Occupancy.FREE.value, None, None, None, 0
        used = len(self._users.get(slot, ()))
        return shared_occupancy(used, self._held.get(slot, 0)).value, None, None, None, used

    def shared_uses(self) -> Iterator[tuple[int, str]]:
        """(slot, service id) for every service on a shared unit."""
        for slot, services in self._users.items():
            for service_id in services:
                yield slot, service_id
