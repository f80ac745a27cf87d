"""The ledger derivation: each unit's occupancy from the active services' paths and the holds,
checking capacity and exclusivity with the rules of resource_mgr.occupancy.derive. Its results
(st.ledger, bad_services, good_holds) are what the unit, shared_use and shared_hold rows are written with."""
from __future__ import annotations

from resource_mgr.bulk.importing.state import ImportState
from resource_mgr.states import ServiceState

_REMOVED = ServiceState.REMOVED.value


def occupy(st: ImportState) -> None:
    """Occupancy from the active services' paths and the holds; capacity and exclusivity."""
    cap, slot_ln = st.slot_cap, st.slot_ln
    st.bad_services = set()
    ledger = st.ledger
    # riders last: one whose bearer is not imported (allow_partial) is not imported either
    for key, (sid, ln, state, sline) in sorted(st.services.items(), key=lambda kv: kv[0] in st.bearer_of):
        arr = st.paths.get(key)
        hops = sorted(zip(arr[0::3], arr[1::3], arr[2::3])) if arr else []
        bad = key in st.unborne
        if key in st.bearer_of:
            if hops:
                st.problem("service_paths.csv", hops[0][2], "service",
                           f"{key!r} rides on {st.bearer_of[key]!r}: it has no path of its own")
                bad = True
            elif st.bearer_of[key] in st.bad_services and not bad:
                st.problem("services.csv", sline, "bearer", f"its bearer {st.bearer_of[key]!r} is not imported")
                bad = True
        if key in st.service_number:
            hops = hops + [(None, *st.service_number[key])]
        seen: set[int] = set()
        for _, slot, line in hops:
            f = "services.csv" if _ is None else "service_paths.csv"
            col = "number" if _ is None else "unit"
            if cap[slot] < 0:
                bad = True  # already reported: unknown unit
                continue
            if slot_ln[slot] != ln:
                st.problem(f, line, col, "the unit belongs to another local network than the service")
                bad = True
            if slot in seen:
                st.problem(f, line, col, "the unit appears twice in this service's path")
                bad = True
            seen.add(slot)
            if state == _REMOVED:
                continue
            refusal = ledger.refuse_occupy(slot, cap[slot])
            if refusal:
                st.problem(f, line, col, refusal)
                bad = True
        if bad:
            st.bad_services.add(key)
            continue
        if state != _REMOVED:
            for _, slot, _line in hops:
                ledger.occupy(slot, cap[slot], sid, key)
    seen_holds: set[tuple[int, str]] = set()
    st.good_holds = []
    for slot, reservation, until, line in st.holds:
        f = "preoccupations.csv"
        if cap[slot] < 0:
            continue
        if (slot, reservation) in seen_holds:
            st.problem(f, line, "reservation", "duplicate hold of this unit by this reservation")
            continue
        refusal = ledger.refuse_hold(slot, cap[slot])
        if refusal:
            st.problem(f, line, "unit", refusal)
            continue
        ledger.hold(slot, cap[slot], reservation, until)
        seen_holds.add((slot, reservation))
        st.good_holds.append((slot, reservation, until))

