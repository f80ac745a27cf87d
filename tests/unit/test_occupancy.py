"""Occupancy and administrative state of a unit, on plain objects (no database, no session)."""
from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest
from sqlalchemy import inspect

from resource_mgr import models  # noqa: F401  (complete the mappers)
from resource_mgr.errors import (
    DomainError, Expired, IllegalTransition, Invalid, Locked, NoCapacity, Quarantined,
)
from resource_mgr.occupancy.models import Change, History, Unit
from resource_mgr.states import AdminState, Occupancy

T0 = datetime(2024, 5, 1, 8, 0, tzinfo=timezone.utc)


def at(hours: float = 0, days: float = 0) -> datetime:
    return T0 + timedelta(hours=hours, days=days)


def change(who: str = "alice", *, order: str | None = "ORD-1", cutover: str | None = None,
           reason: str | None = None, when: datetime = T0, reservation: str | None = None,
           service: str | None = None) -> Change:
    return Change(principal=who, order_ref=order, cutover_id=cutover, reason=reason, at=when,
                  reservation_id=reservation, service_id=service)


def make_unit(kind: str = "box_port", name: str = "GZ-FXH0001-01", capacity: int = 1) -> Unit:
    return Unit(id=f"U-{name}", kind=kind, name=name, seq=1, local_network_id="LN-GZ", owner_id="BOX",
                root_id="BOX", capacity=capacity, used=0, occupancy=Occupancy.FREE,
                admin_state=AdminState.IN_SERVICE, holds=[], uses=[])


def pon_port() -> Unit:
    return make_unit("pon_port", "GZ-TH-OLT01-1/1", capacity=64)


def history(unit: Unit) -> list[History]:
    """History rows recorded on a transient unit (pending in its write-only collection)."""
    return list(inspect(unit).attrs.history.history.added)


def assert_one_new_entry(unit: Unit, before_count: int, action: str, *, principal: str = "alice",
                         order: str | None = "ORD-1", cutover: str | None = None) -> History:
    rows = history(unit)
    assert len(rows) == before_count + 1, [r.action for r in rows]
    h = rows[-1]
    assert h.action == action
    assert h.principal == principal
    assert h.order_ref == order
    assert h.cutover_id == cutover
    assert h.resource_id == unit.id
    assert h.resource_kind == unit.kind
    assert h.local_network_id == "LN-GZ"
    assert isinstance(h.before, dict) and isinstance(h.after, dict)
    assert h.before != h.after
    return h


def refused(unit: Unit, exc: type[DomainError], fn, *args, **kwargs) -> DomainError:
    """The call is refused with `exc`, names the unit, and writes no history nor state."""
    n = len(history(unit))
    state = (unit.occupancy, unit.admin_state, unit.reservation_id, unit.service_id, unit.used,
             unit.preoccupied_until, unit.locked_by, unit.quarantine_until, len(unit.holds))
    with pytest.raises(exc) as info:
        fn(*args, **kwargs)
    assert len(history(unit)) == n
    assert (unit.occupancy, unit.admin_state, unit.reservation_id, unit.service_id, unit.used,
            unit.preoccupied_until, unit.locked_by, unit.quarantine_until, len(unit.holds)) == state
    return info.value


# -- exclusive units: free → preoccupied → occupied → free --------------------------------------

def test_full_lifecycle_writes_one_history_entry_per_transition():
    u = make_unit()
    u.preoccupy(change(), reservation_id="R1", until=at(hours=72))
    h = assert_one_new_entry(u, 0, "preoccupy")
    assert h.before["occupancy"] == "free" and h.after["occupancy"] == "preoccupied"
    assert h.after["reservation_id"] == "R1"
    assert u.effective_occupancy(at(1)) == Occupancy.PREOCCUPIED and u.spare(at(1)) == 0

    u.occupy(change(when=at(2)), service_id="S1", reservation_id="R1")
    h = assert_one_new_entry(u, 1, "occupy")
    assert h.before["occupancy"] == "preoccupied" and h.after["occupancy"] == "occupied"
    assert h.after["service_id"] == "S1" and h.after["reservation_id"] is None
    assert u.effective_occupancy(at(100)) == Occupancy.OCCUPIED  # occupation never expires

    u.release(change(order="ORD-2", when=at(3)), service_id="S1")
    h = assert_one_new_entry(u, 2, "release", order="ORD-2")
    assert h.before["service_id"] == "S1" and h.after["occupancy"] == "free"
    assert u.occupancy == Occupancy.FREE and u.service_id is None and u.spare(at(3)) == 1


def test_occupy_without_reservation_needs_a_free_unit():
    u = make_unit()
    u.occupy(change(), service_id="S1")
    assert_one_new_entry(u, 0, "occupy")
    err = refused(u, NoCapacity, u.occupy, change(), service_id="S2")
    assert "occupied by S1" in err.detail


def test_same_order_extends_its_preoccupation():
    u = make_unit()
    u.preoccupy(change(), reservation_id="R1", until=at(hours=1))
    u.preoccupy(change(when=at(hours=0.5)), reservation_id="R1", until=at(hours=10))
    assert_one_new_entry(u, 1, "preoccupy")
    assert u.preoccupied_until == at(hours=10)
    assert u.effective_occupancy(at(hours=5)) == Occupancy.PREOCCUPIED


def test_another_order_is_refused_with_unit_state_and_holder():
    u = make_unit()
    u.preoccupy(change(), reservation_id="R1", until=at(hours=1))
    err = refused(u, NoCapacity, u.preoccupy, change(order="ORD-2"), reservation_id="R2", until=at(hours=2))
    assert u.name in err.detail and "preoccupied" in err.detail and "R1" in err.detail
    assert err.code == "no_capacity" and err.status == 409
    err = refused(u, IllegalTransition, u.occupy, change(order="ORD-2"), service_id="S2", reservation_id="R2")
    assert u.name in err.detail and "R2" in err.detail and "R1" in err.detail


def test_preoccupation_must_end_in_the_future():
    u = make_unit()
    err = refused(u, Invalid, u.preoccupy, change(), reservation_id="R1", until=T0)
    assert err.field == "ttl_hours"


def test_expired_preoccupation_counts_as_free_everywhere():
    u = make_unit()
    u.preoccupy(change(), reservation_id="R1", until=at(hours=1))
    later = at(hours=2)
    assert u.occupancy == Occupancy.PREOCCUPIED  # no sweeper has run
    assert u.effective_occupancy(later) == Occupancy.FREE
    assert u.spare(later) == 1
    # the old order can no longer occupy: its hold expired
    err = refused(u, Expired, u.occupy, change(when=later), service_id="S1", reservation_id="R1")
    assert "expired" in err.detail and "R1" in err.detail and u.name in err.detail
    # another order takes it
    u.preoccupy(change(order="ORD-2", when=later), reservation_id="R2", until=at(hours=5))
    h = assert_one_new_entry(u, 1, "preoccupy", order="ORD-2")
    assert h.before["occupancy"] == "free"  # the snapshot shows the effective state
    assert u.reservation_id == "R2"
    # and the old order cannot occupy nor release it any more
    refused(u, DomainError, u.occupy, change(when=later), service_id="S1", reservation_id="R1")
    refused(u, IllegalTransition, u.release_preoccupation, change(when=later), reservation_id="R1")
    u.occupy(change(order="ORD-2", when=at(hours=3)), service_id="S2", reservation_id="R2")
    assert u.service_id == "S2"


def test_release_preoccupation_by_its_order_only():
    u = make_unit()
    u.preoccupy(change(), reservation_id="R1", until=at(hours=1))
    err = refused(u, IllegalTransition, u.release_preoccupation, change(), reservation_id="R9")
    assert "R9" in err.detail and "R1" in err.detail
    u.release_preoccupation(change(when=at(hours=0.5)), reservation_id="R1")
    h = assert_one_new_entry(u, 1, "release_preoccupation")
    assert h.after["occupancy"] == "free" and u.reservation_id is None
    # releasing it again (a retried commit) changes nothing; a reservation that never held it is refused
    assert u.release_preoccupation(change(), reservation_id="R1") is False
    assert len(history(u)) == 2
    refused(u, IllegalTransition, u.release_preoccupation, change(), reservation_id="R2")


def test_releasing_an_expired_hold_is_harmless():
    u = make_unit()
    u.preoccupy(change(), reservation_id="R1", until=at(hours=1))
    u.release_preoccupation(change(when=at(hours=5)), reservation_id="R1")
    assert_one_new_entry(u, 1, "release_preoccupation")
    assert u.occupancy == Occupancy.FREE


def test_release_by_the_wrong_service_is_refused():
    u = make_unit()
    u.occupy(change(), service_id="S1")
    err = refused(u, IllegalTransition, u.release, change(), service_id="S2")
    assert u.name in err.detail and "S2" in err.detail and "S1" in err.detail and "occupied" in err.detail
    refused(make_unit(), IllegalTransition, make_unit().release, change(), service_id="S1")


def test_release_of_a_free_unit_is_refused():
    u = make_unit()
    err = refused(u, IllegalTransition, u.release, change(), service_id="S1")
    assert "free" in err.detail


# -- shared units (a PON port with capacity 64) ------------------------------------------------

def test_shared_unit_counts_places_and_holds():
    u = pon_port()
    assert u.shared and u.spare(T0) == 64
    u.preoccupy(change(), reservation_id="R1", until=at(hours=1))
    h = assert_one_new_entry(u, 0, "preoccupy")
    assert h.before == {"occupancy": "free", "admin_state": "in_service", "used": 0, "held": 0}
    assert h.after["held"] == 1
    u.preoccupy(change(order="ORD-2"), reservation_id="R2", until=at(hours=1))
    assert u.spare(T0) == 62 and u.effective_occupancy(T0) == Occupancy.PREOCCUPIED
    u.occupy(change(when=at(hours=0.5)), service_id="S1", reservation_id="R1")
    h = assert_one_new_entry(u, 2, "occupy")
    assert h.after["used"] == 1 and h.after["held"] == 1
    assert u.used == 1 and u.spare(at(hours=0.5)) == 62
    assert u.effective_occupancy(T0) == Occupancy.OCCUPIED
    # the other order's hold expires: its place comes back
    assert u.spare(at(hours=2)) == 63
    refused(u, Expired, u.occupy, change(order="ORD-2", when=at(hours=2)), service_id="S2", reservation_id="R2")
    u.release(change(order="ORD-3", when=at(hours=3)), service_id="S1")
    assert_one_new_entry(u, 3, "release", order="ORD-3")
    assert u.used == 0 and u.effective_occupancy(at(hours=3)) == Occupancy.FREE


def test_shared_unit_extend_and_release_hold():
    u = pon_port()
    u.preoccupy(change(), reservation_id="R1", until=at(hours=1))
    u.preoccupy(change(), reservation_id="R1", until=at(hours=9))
    assert len(u.holds) == 1 and u.spare(at(hours=5)) == 63
    err = refused(u, IllegalTransition, u.release_preoccupation, change(), reservation_id="R9")
    assert "R9" in err.detail
    u.release_preoccupation(change(), reservation_id="R1")
    assert_one_new_entry(u, 2, "release_preoccupation")
    assert u.spare(T0) == 64 and u.effective_occupancy(T0) == Occupancy.FREE


def test_full_shared_unit_refuses_with_no_capacity():
    u = make_unit("pon_port", "GZ-TH-OLT01-1/2", capacity=2)
    u.occupy(change(), service_id="S1")
    u.preoccupy(change(), reservation_id="R1", until=at(hours=1))
    err = refused(u, NoCapacity, u.preoccupy, change(order="ORD-2"), reservation_id="R2", until=at(hours=1))
    assert u.name in err.detail and "2 places" in err.detail
    refused(u, NoCapacity, u.occupy, change(), service_id="S3")
    # the holder may still extend; after the hold expires there is room again
    u.preoccupy(change(), reservation_id="R1", until=at(hours=2))
    u.preoccupy(change(order="ORD-2", when=at(hours=3)), reservation_id="R2", until=at(hours=4))
    assert [h.holder for h in u.active_holds(at(hours=3))] == ["R2"]  # the stale hold no longer counts
    # ... and is cleared by the sweeper's expire, which records it (trust counts expiries from there)
    entries = len(history(u))
    assert u.expire(change(when=at(hours=3))) == ["R1"]
    expired = assert_one_new_entry(u, entries, "expire")
    assert expired.reservation_id == "R1" and expired.before["expired_hold"] == "R1"
    assert [h.holder for h in u.holds] == ["R2"] and u.expire(change(when=at(hours=3))) == []


def test_expire_frees_an_exclusive_unit_only_once_its_preoccupation_has_expired():
    u = make_unit("box_port", "GZ-TH-FXH0001-03")
    u.preoccupy(change(), reservation_id="R1", until=at(hours=1))
    assert u.expire(change()) == [] and u.occupancy == Occupancy.PREOCCUPIED  # still live
    assert u.expire(change(when=at(hours=2))) == ["R1"]
    assert (u.occupancy, u.reservation_id, u.preoccupied_until) == (Occupancy.FREE, None, None)
    h = assert_one_new_entry(u, 1, "expire")
    assert h.reservation_id == "R1" and h.before["reservation_id"] == "R1" and h.after["reservation_id"] is None


def test_shared_release_with_nothing_used_is_refused():
    u = pon_port()
    err = refused(u, IllegalTransition, u.release, change(), service_id="S1")
    assert "S1 is not on it" in err.detail and "0 of 64" in err.detail


def test_shared_unit_knows_its_services():
    """Occupy with S1, release S-NEVER-HERE: refused, and S1's own release still works."""
    u = pon_port()
    u.occupy(change(), service_id="S1")
    err = refused(u, IllegalTransition, u.release, change(), service_id="S-NEVER-HERE")
    assert "S-NEVER-HERE" in err.detail and "1 of 64" in err.detail
    assert u.used == 1 and [x.service_id for x in u.uses] == ["S1"]
    assert u.release(change(when=at(1)), service_id="S1") is True
    assert u.used == 0 and u.uses == [] and u.effective_occupancy(at(1)) == Occupancy.FREE


def test_occupy_and_release_are_idempotent_for_the_same_service():
    for u in (pon_port(), make_unit()):
        u.preoccupy(change(), reservation_id="R1", until=at(hours=2))
        assert u.occupy(change(when=at(1)), service_id="S1", reservation_id="R1") is True
        entries, used = len(history(u)), u.used
        # the commit is retried: nothing changes, nothing is recorded
        assert u.occupy(change(when=at(1)), service_id="S1", reservation_id="R1") is False
        assert u.occupy(change(when=at(1)), service_id="S1") is False
        assert (len(history(u)), u.used, u.occupancy) == (entries, used, Occupancy.OCCUPIED)
        assert u.release(change(when=at(2)), service_id="S1") is True
        assert u.release(change(when=at(2)), service_id="S1") is False
        assert len(history(u)) == entries + 1 and u.spare(at(2)) == u.capacity
        refused(u, IllegalTransition, u.release, change(when=at(2)), service_id="S2")


def test_preoccupying_again_with_the_same_expiry_changes_nothing():
    for u in (pon_port(), make_unit()):
        assert u.preoccupy(change(), reservation_id="R1", until=at(2)) is True
        assert u.preoccupy(change(), reservation_id="R1", until=at(2)) is False
        assert len(history(u)) == 1


def test_history_names_the_reservation_and_service_of_each_transition():
    """The change need not repeat them: a shared hold's rows name their reservation."""
    u = pon_port()
    u.preoccupy(change(), reservation_id="R1", until=at(2))
    u.preoccupy(change(), reservation_id="R2", until=at(2))
    u.occupy(change(when=at(1)), service_id="S1", reservation_id="R1")
    u.release_preoccupation(change(when=at(1)), reservation_id="R2")
    u.release(change(when=at(1.5)), service_id="S1")
    assert [(h.action, h.reservation_id, h.service_id) for h in history(u)] == [
        ("preoccupy", "R1", None), ("preoccupy", "R2", None), ("occupy", "R1", "S1"),
        ("release_preoccupation", "R2", None), ("release", None, "S1")]


def test_occupy_needs_a_service():
    u = make_unit()
    err = refused(u, Invalid, u.occupy, change(), service_id=None)
    assert err.field == "service_id"


# -- administrative state ----------------------------------------------------------------------

def test_lock_and_unlock_by_cutover():
    u = make_unit()
    u.lock(change(order=None, cutover="CUT-1"))
    h = assert_one_new_entry(u, 0, "lock", order=None, cutover="CUT-1")
    assert h.before["admin_state"] == "in_service" and h.after["admin_state"] == "locked"
    assert h.after["locked_by"] == "CUT-1"
    u.lock(change(order=None, cutover="CUT-1"))  # a retry is a no-op
    assert len(history(u)) == 1
    err = refused(u, IllegalTransition, u.lock, change(order=None, cutover="CUT-2"))
    assert "CUT-1" in err.detail and "locked" in err.detail and u.name in err.detail
    err = refused(u, IllegalTransition, u.unlock, change(order=None, cutover="CUT-2"))
    assert "CUT-1" in err.detail and "CUT-2" in err.detail
    u.unlock(change(order=None, cutover="CUT-1"))
    h = assert_one_new_entry(u, 1, "unlock", order=None, cutover="CUT-1")
    assert h.after["admin_state"] == "in_service" and u.locked_by is None
    refused(u, IllegalTransition, u.unlock, change(order=None, cutover="CUT-1"))


def test_lock_needs_a_cutover():
    u = make_unit()
    err = refused(u, Invalid, u.lock, change())
    assert err.field == "cutover_id"


def test_locked_unit_refuses_new_orders_but_keeps_what_it_carries():
    u = make_unit()
    u.occupy(change(), service_id="S1")
    u.lock(change(cutover="CUT-1"))
    assert u.service_id == "S1" and u.occupancy == Occupancy.OCCUPIED
    free = make_unit(name="P2")
    free.lock(change(cutover="CUT-1"))
    err = refused(free, Locked, free.preoccupy, change(), reservation_id="R1", until=at(1))
    assert err.code == "locked" and "CUT-1" in err.detail and free.name in err.detail
    refused(free, Locked, free.occupy, change(), service_id="S2")
    held = make_unit(name="P3")
    held.preoccupy(change(), reservation_id="R1", until=at(1))
    held.lock(change(cutover="CUT-1"))
    refused(held, Locked, held.occupy, change(), service_id="S1", reservation_id="R1")


def test_faulty_needs_a_reason_and_refuses_preoccupy_until_repaired():
    u = make_unit()
    err = refused(u, Invalid, u.mark_faulty, change())
    assert err.field == "reason"
    u.mark_faulty(change(reason="water in the box"))
    h = assert_one_new_entry(u, 0, "mark_faulty")
    assert h.reason == "water in the box" and h.after["admin_state"] == "faulty"
    assert u.admin_reason == "water in the box"
    err = refused(u, IllegalTransition, u.preoccupy, change(), reservation_id="R1", until=at(1))
    assert "faulty" in err.detail and u.name in err.detail
    refused(u, IllegalTransition, u.mark_faulty, change(reason="again"))
    u.repair(change(reason="dried"))
    h = assert_one_new_entry(u, 1, "repair")
    assert h.after["admin_state"] == "in_service"
    refused(u, IllegalTransition, u.repair, change())
    u.preoccupy(change(), reservation_id="R1", until=at(1))


def test_reserve_only_when_free_and_unreserve():
    busy = make_unit()
    busy.preoccupy(change(), reservation_id="R1", until=at(1))
    err = refused(busy, IllegalTransition, busy.reserve, change())
    assert "preoccupied" in err.detail
    # an expired pre-occupation is free: it may be reserved
    busy.reserve(change(when=at(2)))
    assert busy.admin_state == AdminState.RESERVED

    u = make_unit()
    u.reserve(change(reason="new estate"))
    h = assert_one_new_entry(u, 0, "reserve")
    assert h.after["admin_state"] == "reserved"
    err = refused(u, IllegalTransition, u.preoccupy, change(), reservation_id="R1", until=at(1))
    assert "reserved" in err.detail
    refused(u, IllegalTransition, u.reserve, change())
    refused(u, IllegalTransition, u.lock, change(cutover="CUT-1"))
    u.unreserve(change())
    assert_one_new_entry(u, 1, "unreserve")
    refused(u, IllegalTransition, u.unreserve, change())
    u.preoccupy(change(), reservation_id="R1", until=at(1))


def test_reserve_of_a_shared_unit_with_holds_is_refused():
    u = pon_port()
    u.preoccupy(change(), reservation_id="R1", until=at(1))
    refused(u, IllegalTransition, u.reserve, change())


# -- numbers: quarantine -----------------------------------------------------------------------

def number() -> Unit:
    return make_unit("number", "87651234")


def test_release_puts_a_number_in_quarantine():
    n = number()
    n.occupy(change(), service_id="S1")
    n.release(change(when=at(days=1)), service_id="S1", quarantine_days=90)
    h = assert_one_new_entry(n, 1, "release")
    assert n.quarantine_until == at(days=91)
    assert h.after["quarantine_until"] == at(days=91).isoformat()
    assert n.is_quarantined(at(days=90)) and not n.is_quarantined(at(days=91))
    err = refused(n, Quarantined, n.preoccupy, change(order="ORD-2", when=at(days=2)),
                  reservation_id="R2", until=at(days=3))
    assert err.code == "quarantined" and n.name in err.detail and "quarantine" in err.detail
    refused(n, Quarantined, n.occupy, change(when=at(days=2)), service_id="S2")
    # after the quarantine it can be taken again
    n.preoccupy(change(order="ORD-2", when=at(days=92)), reservation_id="R2", until=at(days=93))


def test_end_quarantine():
    n = number()
    refused(n, IllegalTransition, n.end_quarantine, change())
    n.occupy(change(), service_id="S1")
    n.release(change(), service_id="S1", quarantine_days=30)
    n.end_quarantine(change(reason="customer asked back"))
    h = assert_one_new_entry(n, 2, "end_quarantine")
    assert "quarantine_until" in h.before and "quarantine_until" not in h.after
    assert n.quarantine_until is None
    n.preoccupy(change(when=at(1)), reservation_id="R2", until=at(2))


def test_release_without_quarantine_days_and_of_other_kinds():
    n = number()
    n.occupy(change(), service_id="S1")
    n.release(change(), service_id="S1")
    assert n.quarantine_until is None
    p = make_unit()
    p.occupy(change(), service_id="S1")
    p.release(change(), service_id="S1", quarantine_days=90)
    assert p.quarantine_until is None  # only numbers age
