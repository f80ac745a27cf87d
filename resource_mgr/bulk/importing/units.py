"""Units: derived from their owners (templates, cables), listed in units.csv, referred to by
slot; cards; connections between units; and the unit rows, each with its final occupancy."""
from __future__ import annotations

import sys
from collections.abc import Iterator
from typing import Any

from resource_mgr.bulk import format as fmt
from resource_mgr.bulk.format import BundleReader, split_unit_ref
from resource_mgr.bulk.importing.numbers import segment_of
from resource_mgr.bulk.importing.rows import ref, rows
from resource_mgr.bulk.importing.state import ImportState, Owner
from resource_mgr.inventory import naming
from resource_mgr.inventory.templates import TemplateSpec
from resource_mgr.occupancy.derive import FIRST_VERSION
from resource_mgr.states import AdminState, Occupancy

UNIT_COLS = ("id", "kind", "name", "seq", "local_network_id", "owner_id", "root_id", "side", "technology",
             "occupancy", "reservation_id", "preoccupied_until", "service_id", "capacity", "used",
             "admin_state", "locked_by", "admin_reason", "quarantine_until", "version")
CONNECTION_COLS = ("id", "kind", "a_unit_id", "z_unit_id", "local_network_id", "container_id", "created_at")
_CONN_KINDS = fmt.CONNECTION_KINDS
_FREE = Occupancy.FREE.value
_IN_SERVICE, _LOCKED = AdminState.IN_SERVICE.value, AdminState.LOCKED.value
_CARD_STATUS = fmt.STATUS.default  # a resource's status (not a unit's admin state): in service


# -- units from their owners ---------------------------------------------------------------------

def derived(st: ImportState, owner: Owner) -> tuple[list[tuple], list[tuple], dict[tuple[str, str], int]]:
    """(cards [(slot, name, card_type)], units [(card slot|None, kind, name, seq, capacity,
    technology, side)], index (kind, name) → position) for a template owner or a cable."""
    if owner.derived is None:
        owner.derived = derive(st.rules[owner.ln], owner, st.derived_cache)
    return owner.derived


def derive(rules: dict[str, str], owner: Owner, cache: dict[tuple, tuple]
           ) -> tuple[list[tuple], list[tuple], dict[tuple[str, str], int]]:
    """What an owner's template (or a cable's unit count) makes under the naming `rules` of its
    local network; `cache` keeps the answers that do not depend on the owner's name."""
    if owner.mode == "cable":
        kind = "pair" if owner.medium == "copper" else "core"
        pattern = rules[kind]
        ck = ("cable", owner.ln, kind, owner.count, owner.name if "{cable" in pattern else None)
        hit = cache.get(ck)
        if hit is None:
            units = [(None, kind, naming.render(pattern, cable=owner.name, seq=n), n, 1, owner.medium, "")
                     for n in range(1, owner.count + 1)]
            hit = ([], units, {(u[1], u[2]): i for i, u in enumerate(units)})
            cache[ck] = hit
        return hit
    tpl = owner.tpl
    spec: TemplateSpec = tpl.spec
    pats = [rules[k] for k in ("card", "port", "device_port", "terminal", "box_port")]
    by_name = any("{device" in p or "{box" in p for p in pats)
    ck = ("tpl", owner.ln, tpl.name, owner.name if by_name else None)
    hit = cache.get(ck)
    if hit is None:
        name = owner.name
        cards, units = [], []
        for cs in spec.cards:
            for slot in cs.slots:
                cards.append((slot, naming.render(rules["card"], device=name, slot=slot, card_type=cs.card_type),
                              cs.card_type))
                for g in cs.ports:
                    for n in range(g.first, g.first + g.count):
                        units.append((slot, g.port_kind, naming.render(rules["port"], device=name, slot=slot, port=n,
                                                                       card_type=cs.card_type),
                                      n, g.capacity, g.technology, g.side))
        for g in spec.ports:
            rk = {"terminal": "terminal", "box_port": "box_port"}.get(g.port_kind, "device_port")
            for n in range(g.first, g.first + g.count):
                units.append((None, g.port_kind, naming.render(rules[rk], device=name, box=name, port=n,
                                                                side=g.side or g.port_kind,
                                                                label=naming.PORT_LABELS.get(g.port_kind, "")),
                              n, g.capacity, g.technology, g.side))
        hit = (cards, units, {(u[1], u[2]): i for i, u in enumerate(units)})
        cache[ck] = hit
    return hit


# -- reading -------------------------------------------------------------------------------------

def cards(st: ImportState, reader: BundleReader) -> None:
    seen: set[tuple[str, str]] = set()
    for spec, line, v in rows(st, reader, "cards"):
        owner = st.owners.get(v["device"])
        if owner is None or owner.mode != "listed":
            st.problem(spec.filename, line, "device", f"{v['device']!r} is not a device, frame or box "
                       "with units=listed earlier in the bundle")
            continue
        if (v["device"], v["name"]) in seen:
            st.problem(spec.filename, line, "name", f"duplicate card {v['name']!r}")
            continue
        seen.add((v["device"], v["name"]))
        st.cards[v["device"]].append((v["slot"], v["name"], line, v["card_type"]))


def slot(st: ImportState, file: str, line: int, column: str, unit_ref: str, *, defining: bool = False) -> int | None:
    """The slot of a unit reference. A new one is checked here, once: its owner is defined
    earlier in the bundle and has the unit (`defining`: units.csv is defining it)."""
    try:
        root, kind, name = split_unit_ref(unit_ref)
    except ValueError as exc:
        st.problem(file, line, column, str(exc))
        return None
    refs = st.uref[root]
    found = refs.get((kind, name))
    if found is None:
        found = len(st.slot_ln)
        refs[(sys.intern(kind), name)] = found
        st.slot_cap.append(-1)
        st.slot_ln.append(None)
        st.slot_id.append(_resolve(st, file, line, column, root, kind, name, found, defining))
    return found


def _resolve(st: ImportState, file: str, line: int, column: str, root: str, kind: str, name: str, slot_: int,
             defining: bool) -> int:
    """Learn a new slot's capacity and local network (they stay -1 and None for a unit that
    does not exist) and return its id counter. A template or cable unit has the counter of
    its place in the owner's block and a number that of its place in the segment's, so
    every unit's id is known whether anything refers to it or not."""
    owner = st.owners.get(root)
    if owner is None:
        st.problem(file, line, column, f"unknown unit owner {root!r} (a device, frame, box, cable or "
                                       "number pool defined earlier in the bundle)")
    elif owner.mode == "pool":
        seg = segment_of(st, name, owner.ln) if kind == "number" else None
        if seg is not None and seg[4] == root:
            st.slot_cap[slot_], st.slot_ln[slot_] = 1, owner.ln
            return seg[6] + int(name) - seg[0]
        st.problem(file, line, column, f"no {kind} {name!r} in number pool {root!r}")
    elif owner.mode == "listed":
        if defining:
            st.slot_ln[slot_] = owner.ln  # its capacity comes with the units.csv row
        else:
            st.problem(file, line, column, f"no {kind} {name!r} in {root!r} (units=listed: define it in "
                                           "units.csv)")
    else:
        _, units_, index = derived(st, owner)
        i = index.get((kind, name))
        if i is not None:
            st.slot_cap[slot_], st.slot_ln[slot_] = units_[i][4], owner.ln
            return owner.base + i
        st.problem(file, line, column, f"no {kind} {name!r} in {root!r}")
    return st.ids.next_int()


def units(st: ImportState, reader: BundleReader) -> None:
    seen: set[int] = set()
    for spec, line, v in rows(st, reader, "units"):
        try:
            root, kind, _ = split_unit_ref(v["unit"])
        except ValueError as exc:
            st.problem(spec.filename, line, "unit", str(exc))
            continue
        owner = st.owners.get(root)
        if owner is None:
            st.problem(spec.filename, line, "unit", f"unknown owner {root!r} (a device, frame, box or cable "
                                                    "defined earlier)")
            continue
        if kind == "number":
            st.problem(spec.filename, line, "unit", "numbers are listed in numbers.csv")
            continue
        s = slot(st, spec.filename, line, "unit", v["unit"], defining=True)
        if s is None:
            continue
        if s in seen:
            st.problem(spec.filename, line, "unit", f"duplicate unit {v['unit']!r}")
            continue
        seen.add(s)
        attrs = {k: v[k] for k in ("seq", "side", "technology", "capacity", "admin_state", "admin_reason",
                                   "locked_by", "card") if v[k] is not None}
        if attrs.get("admin_state") == _LOCKED and not attrs.get("locked_by"):
            st.problem(spec.filename, line, "locked_by", "a locked unit needs the cutover that locks it")
            continue
        if owner.mode == "listed":
            if v["card"] is not None and v["card"] not in {c[1] for c in st.cards.get(root, [])}:
                st.problem(spec.filename, line, "card", f"no card {v['card']!r} in cards.csv for {root!r}")
                continue
            st.listed[root].append((s, attrs))
            st.slot_cap[s] = attrs.get("capacity", 1)
        else:
            if v["card"] is not None:
                st.problem(spec.filename, line, "card", "card is only for units of owners with units=listed")
                continue
            st.slot_over[s] = attrs
            if "capacity" in attrs and st.slot_cap[s] >= 0:
                st.slot_cap[s] = attrs["capacity"]


def connections(st: ImportState, reader: BundleReader) -> None:
    seen: set[tuple[int, int]] = set()
    for spec, line, v in rows(st, reader, "connections"):
        a = slot(st, spec.filename, line, "a", v["a"])
        z = slot(st, spec.filename, line, "z", v["z"])
        if a is None or z is None:
            continue
        if a == z:
            st.problem(spec.filename, line, "z", "a connection needs two different units")
            continue
        if (a, z) in seen or (z, a) in seen:
            st.problem(spec.filename, line, "z", "these two units are already connected")
            continue
        seen.add((a, z))
        container = ref(st, spec.filename, line, "container", v["container"])
        if container is False:
            continue
        ck, ca, cz, cc, cl = st.connections
        ck.append(_CONN_KINDS.index(v["kind"]))
        ca.append(a)
        cz.append(z)
        cc.append(container[0] if container else None)
        cl.append(line)


def check_connections(st: ImportState) -> None:
    cap, slot_ln = st.slot_cap, st.slot_ln
    good = st.good_connections
    ck, ca, cz, cc, cl = st.connections
    for i in range(len(ck)):
        a, z = ca[i], cz[i]
        if cap[a] < 0 or cap[z] < 0:
            continue
        if slot_ln[a] != slot_ln[z]:
            st.problem("connections.csv", cl[i], "z", "both ends must be in the same local network")
            continue
        good.append(i)


# -- writing -------------------------------------------------------------------------------------

def send_connections(st: ImportState) -> None:
    out = st.out
    if out.sent["connection"]:
        return
    out.sent["connection"] = len(st.good_connections)
    sid, slot_ln, ids, now = st.slot_id, st.slot_ln, st.ids, st.now_stored
    ck, ca, cz, cc, _ = st.connections
    out.fast("connection", CONNECTION_COLS,
             ((ids(), _CONN_KINDS[ck[i]], sid[ca[i]], sid[cz[i]], slot_ln[ca[i]], cc[i], now)
              for i in st.good_connections), convert=False)


def write_units(st: ImportState) -> None:
    """Every unit (cards first), then every number, each written once with its final occupancy."""
    from resource_mgr.bulk.importing.numbers import write_numbers
    from resource_mgr.bulk.importing.resources import RES_COLS

    if st.units_sent:
        return
    st.units_sent = True
    out = st.out
    ids, text, now = st.ids, st.ids.text, st.now_stored
    card_rows: list[tuple] = []
    card_res: list[tuple] = []

    def unit_rows() -> Iterator[tuple]:
        slot_id, over_all = st.slot_id, st.slot_over
        for key, owner in st.owners.items():
            ln, root_id = owner.ln, owner.id
            refs = st.uref.get(key, {})
            if owner.mode == "pool":
                continue
            if owner.mode == "listed":
                card_ids = {}
                for slot_no, name, _line, card_type in st.cards.get(key, ()):
                    cid = ids()
                    card_ids[name] = cid
                    card_res.append((cid, "card", name, ln, root_id, root_id, _CARD_STATUS, now))
                    card_rows.append((cid, slot_no, card_type))
                slots_by = {s: k for k, s in refs.items()}
                for s, a in st.listed.get(key, ()):
                    kind, name = slots_by[s]
                    owner_id = card_ids[a["card"]] if a.get("card") else root_id
                    yield unit_tuple(st, s, slot_id[s], kind, name, a.get("seq", 0), ln, owner_id, root_id,
                                     a.get("side", ""), a.get("technology", ""), a.get("capacity", 1), a)
                continue
            cards_, units_, _ = derived(st, owner)
            card_ids = {}
            for slot_no, name, card_type in cards_:
                cid = ids()
                card_ids[slot_no] = cid
                card_res.append((cid, "card", name, ln, root_id, root_id, _CARD_STATUS, now))
                card_rows.append((cid, slot_no, card_type))
            base = owner.base
            for i, (card_slot, kind, name, seq, capacity, tech, side) in enumerate(units_):
                owner_id = root_id if card_slot is None else card_ids[card_slot]
                s = refs.get((kind, name)) if refs else None
                if s is None:
                    yield (text(base + i), kind, name, seq, ln, owner_id, root_id, side, tech, _FREE, None, None,
                           None, capacity, 0, _IN_SERVICE, None, None, None, FIRST_VERSION)
                else:
                    yield unit_tuple(st, s, text(base + i), kind, name, seq, ln, owner_id, root_id, side,
                                     tech, capacity, over_all.get(s))

    def flush_cards() -> None:
        if card_res:
            out.fast("resource", RES_COLS, card_res, convert=False)
            out.fast("card", ("id", "slot", "card_type"), card_rows)
            card_res.clear()
            card_rows.clear()

    # A card must exist before its units: the generator records an owner's cards as it
    # starts the owner, and they are written before each batch of units.
    pending: list[tuple] = []
    for row in unit_rows():
        pending.append(row)
        if len(pending) >= 50_000:
            flush_cards()
            out.fast("unit", UNIT_COLS, pending, convert=False)
            pending = []
    flush_cards()
    out.fast("unit", UNIT_COLS, pending, convert=False)
    write_numbers(st)


def unit_tuple(st: ImportState, s: int, uid: str, kind: str, name: str, seq: int, ln: str, owner_id: str,
               root_id: str, side: str, tech: str, capacity: int, over: dict[str, Any] | None) -> tuple:
    """A referenced unit's row: its attributes from units.csv and its occupancy from the ledger."""
    if over:
        seq = over.get("seq", seq)
        side = over.get("side", side)
        tech = over.get("technology", tech)
        capacity = over.get("capacity", capacity)
        admin, locked_by, reason = over.get("admin_state", _IN_SERVICE), over.get("locked_by"), over.get("admin_reason")
    else:
        admin, locked_by, reason = _IN_SERVICE, None, None
    occ, reservation, until, service, used = st.ledger.unit_columns(s, capacity)
    if until is not None:
        until = st.out.value(until)
    return (uid, kind, name, seq, ln, owner_id, root_id, side or "", tech or "", occ, reservation, until, service,
            capacity, used, admin, locked_by if admin == _LOCKED else None, reason, None, FIRST_VERSION)
