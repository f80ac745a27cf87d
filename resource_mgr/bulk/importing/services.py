"""Customers, services (and the bearers their riders ride on), service paths and holds
(pre-occupations)."""
from __future__ import annotations

from resource_mgr.bulk import format as fmt
from resource_mgr.bulk.format import BundleReader
from resource_mgr.bulk.importing.numbers import segment_of
from resource_mgr.bulk.importing.rows import local_network, ref, rows
from resource_mgr.bulk.importing.state import ImportState
from resource_mgr.bulk.importing.units import slot
from resource_mgr.states import ServiceState

SERVICE_COLS = ("id", "local_network_id", "product", "technology", "state", "customer_id", "address_id", "number",
                "order_ref", "created_at", "removed_at", "bearer_id")
_REMOVED = ServiceState.REMOVED.value


def customers(st: ImportState, reader: BundleReader) -> None:
    st.cols["customer"] = ("id", "local_network_id", "external_ref", "name", "grade", "created_at")
    for spec, line, v in rows(st, reader, "customers"):
        ln = local_network(st, spec.filename, line, v["local_network"])
        if ln is None:
            continue
        if (ln, v["key"]) in st.customers:
            st.problem(spec.filename, line, "key", f"duplicate customer {v['key']!r} in {v['local_network']}")
            continue
        id_ = st.ids()
        st.customers[(ln, v["key"])] = id_
        st.rows["customer"].append((id_, ln, v["key"], v["name"], v["grade"], st.now_stored))


def services(st: ImportState, reader: BundleReader) -> None:
    st.cols["service"] = SERVICE_COLS
    riders: list[tuple[int, str, int]] = []  # row, service key, line
    for spec, line, v in rows(st, reader, "services"):
        f = spec.filename
        key = v["key"]
        if key in st.services:
            st.problem(f, line, "key", f"duplicate service {key!r}")
            continue
        ln = local_network(st, f, line, v["local_network"])
        if ln is None:
            continue
        customer = None
        if v["customer"] is not None:
            customer = st.customers.get((ln, v["customer"]))
            if not customer:
                st.problem(f, line, "customer", f"unknown customer {v['customer']!r} in {v['local_network']}")
                continue
        addr = ref(st, f, line, "address", v["address"], ("address",), ln)
        if addr is False:
            continue
        number = v["number"]
        if number is not None:
            seg = segment_of(st, number, ln)
            if seg is None:
                st.problem(f, line, "number", f"number {number!r} is in no segment of the bundle in "
                                              f"{v['local_network']}")
                continue
            if v["state"] != _REMOVED:
                s = slot(st, f, line, "number", fmt.unit_ref(seg[4], "number", number))
                st.service_number[key] = (s, line)
        id_ = st.ids()
        st.services[key] = (id_, ln, v["state"], line)
        if v["bearer"] is not None:
            st.bearer_of[key] = v["bearer"]
            riders.append((len(st.rows["service"]), key, line))
        st.rows["service"].append((id_, ln, v["product"], v["technology"], v["state"], customer,
                                   addr[0] if addr else None, number, v["order_ref"],
                                   v["created_at"] or st.now, v["removed_at"], None))
    _bearers(st, riders)


def _bearers(st: ImportState, riders: list[tuple[int, str, int]]) -> None:
    """A bearer (any order in the file) is a service of the bundle in the rider's local
    network that rides on nothing itself; a live rider needs a live bearer."""
    made, f = st.rows["service"], "services.csv"
    for i, key, line in riders:
        bearer = st.bearer_of[key]
        found = st.services.get(bearer)
        if found is None:
            reason = f"unknown service {bearer!r}"
        elif found[1] != st.services[key][1]:
            reason = f"{bearer!r} is in another local network"
        elif bearer in st.bearer_of:
            reason = f"{bearer!r} rides on a bearer itself: name the line service"
        elif found[2] == _REMOVED and st.services[key][2] != _REMOVED:
            reason = f"{bearer!r} is removed"
        else:
            made[i] = made[i][:-1] + (found[0],)
            continue
        st.problem(f, line, "bearer", reason)
        st.unborne.add(key)
    made.sort(key=lambda r: r[-1] is not None)  # bearers before riders, for foreign-key checks


def service_paths(st: ImportState, reader: BundleReader) -> None:
    seen: set[tuple[str, int]] = set()
    for spec, line, v in rows(st, reader, "service_paths"):
        if v["service"] not in st.services:
            st.problem(spec.filename, line, "service", f"unknown service {v['service']!r}")
            continue
        if (v["service"], v["seq"]) in seen:
            st.problem(spec.filename, line, "seq", f"duplicate seq {v['seq']} for service {v['service']}")
            continue
        seen.add((v["service"], v["seq"]))
        s = slot(st, spec.filename, line, "unit", v["unit"])
        if s is not None:
            st.paths[v["service"]].extend((v["seq"], s, line))


def preoccupations(st: ImportState, reader: BundleReader) -> None:
    for spec, line, v in rows(st, reader, "preoccupations"):
        if len(v["reservation"]) > 26:
            st.problem(spec.filename, line, "reservation", "at most 26 characters")
            continue
        s = slot(st, spec.filename, line, "unit", v["unit"])
        if s is not None:
            st.holds.append((s, v["reservation"], v["until"], line))


def send_paths(st: ImportState) -> None:
    out = st.out
    if out.sent["service_unit"]:
        return
    bad, sid = st.bad_services, st.slot_id
    out.sent["service_unit"] = sum(len(hops) // 3 for hops in st.paths.values())
    out.fast("service_unit", ("service_id", "seq", "unit_id"),
             ((st.services[key][0], hops[j], sid[hops[j + 1]]) for key, hops in st.paths.items()
              if key not in bad for j in range(0, len(hops), 3)))


def send_holds(st: ImportState) -> None:
    """The holds on shared units (an exclusive unit's hold is on its row)."""
    sid = st.slot_id
    st.out.fast("shared_hold", ("id", "unit_id", "holder", "expires_at"),
                [(st.ids(), sid[s], reservation, until) for s, reservation, until in st.good_holds
                 if st.slot_cap[s] != 1])
    # the services on shared units (an exclusive unit's service is on its row)
    st.out.fast("shared_use", ("unit_id", "service_id", "since"),
                [(sid[s], service, st.now_stored) for s, service in st.ledger.shared_uses()], convert=False)


def send_reservations(st: ImportState) -> None:
    """One reservation row (resource_mgr.orders) per reservation id of preoccupations.csv, so an
    imported pre-occupation is an order like any other: listed, cancelled, expired by the sweep
    (counted once). Its order_ref is the reservation id; it names no products (the source system
    knows them), so it cannot be committed here. Ids that already have a row are left alone."""
    import json
    from collections import defaultdict

    from sqlalchemy import text

    if not st.good_holds:
        return
    sid, out = st.slot_id, st.out
    units: dict[str, list[str]] = defaultdict(list)
    meta: dict[str, tuple[str | None, object]] = {}
    for s, reservation, until in st.good_holds:
        units[reservation].append(sid[s])
        ln, last = meta.get(reservation, (st.slot_ln[s], until))
        meta[reservation] = (ln, max(last, until))
    have = set()
    ids = sorted(units)
    for i in range(0, len(ids), 500):
        chunk = ids[i:i + 500]
        marks = ", ".join(f":r{j}" for j in range(len(chunk)))
        have |= set(out.conn.execute(text(f"SELECT id FROM reservation WHERE id IN ({marks})"),
                                     {f"r{j}": r for j, r in enumerate(chunk)}).scalars())
    request = json.dumps({"imported": True})
    out.fast("reservation", ("id", "local_network_id", "order_ref", "action", "products", "state", "expires_at",
                             "unit_ids", "release", "request", "principal", "created_at", "updated_at", "version"),
             [(r, meta[r][0], r, "new", "[]", "preoccupied", out.value(meta[r][1]), json.dumps(units[r]), "{}",
               request, "system:import", st.now_stored, st.now_stored, 1) for r in ids if r not in have],
             convert=False)

