"""Local networks, naming rules, templates and resources (one row maker per resource kind), and
the two late files that only link resources (coverage, cable spans)."""
from __future__ import annotations

from collections.abc import Callable
from typing import Any

from resource_mgr.addresses.normalise import normalise
from resource_mgr.bulk import format as fmt
from resource_mgr.bulk.format import FILE_BY_NAME, BundleReader
from resource_mgr.bulk.importing import numbers
from resource_mgr.bulk.importing.rows import local_network, ref, ref_id, rows
from resource_mgr.bulk.importing.state import ImportState, Owner, Template
from resource_mgr.bulk.importing.units import derived
from resource_mgr.errors import Invalid
from resource_mgr.geo.spatial import length_m
from resource_mgr.inventory import naming
from resource_mgr.inventory.templates import parse_spec

RES_COLS = ("id", "kind", "name", "local_network_id", "parent_id", "scope_id", "status", "created_at")
SWITCH_TYPES = ("pstn_switch", "ngn_softswitch", "access_gateway")


def local_networks(st: ImportState, reader: BundleReader) -> None:
    st.cols["local_network"] = ("id", "code", "name", "province", "area_code", "created_at")
    seen: set[str] = set()
    for spec, line, v in rows(st, reader, "local_networks"):
        code = v["code"]
        if code in seen:
            st.problem(spec.filename, line, "code", f"duplicate local network {code!r}")
            continue
        seen.add(code)
        if not code.isalnum():
            st.problem(spec.filename, line, "code", "must be letters and digits, e.g. GZ")
            continue
        if not v["area_code"].isdigit() or not 2 <= len(v["area_code"]) <= 4:
            st.problem(spec.filename, line, "area_code", "must be 2–4 digits, e.g. 20 or 755")
            continue
        if code in st.ln:
            if st.ln[code][1] != v["area_code"]:
                st.problem(spec.filename, line, "area_code",
                           f"local network {code} exists with area code {st.ln[code][1]}")
            continue  # reused
        id_ = st.ids()
        st.ln[code] = (id_, v["area_code"], False)
        st.rules[id_] = dict(naming.DEFAULT_RULES)
        st.rows["local_network"].append((id_, code, v["name"], v["province"] or "", v["area_code"], st.now))


def naming_rules(st: ImportState, reader: BundleReader) -> None:
    seen: set[tuple[str, str]] = set()
    for spec, line, v in rows(st, reader, "naming_rules"):
        ln = local_network(st, spec.filename, line, v["local_network"])
        if ln is None:
            continue
        if (ln, v["kind"]) in seen:
            st.problem(spec.filename, line, "kind", f"duplicate naming rule for {v['kind']}")
            continue
        seen.add((ln, v["kind"]))
        try:
            naming.check_pattern(v["kind"], v["pattern"])
        except Invalid as exc:
            st.problem(spec.filename, line, "pattern", exc.detail)
            continue
        st.rules[ln][v["kind"]] = v["pattern"]
        st.rule_updates.append((ln, v["kind"], v["pattern"]))


def templates(st: ImportState, reader: BundleReader) -> None:
    st.cols["device_template"] = ("id", "name", "resource_kind", "device_type", "vendor", "spec", "version")
    seen: set[str] = set()
    for spec, line, v in rows(st, reader, "templates"):
        name = v["name"]
        if name in seen:
            st.problem(spec.filename, line, "name", f"duplicate template {name!r}")
            continue
        seen.add(name)
        if v["resource_kind"] == "device" and not v["device_type"]:
            st.problem(spec.filename, line, "device_type", "a device template needs a device_type")
            continue
        try:
            tspec = parse_spec(v["spec"]) if isinstance(v["spec"], dict) else parse_spec({"x": v["spec"]})
        except Invalid as exc:
            st.problem(spec.filename, line, "spec", exc.detail)
            continue
        if name in st.tpl:
            old = st.tpl[name]
            if old.resource_kind != v["resource_kind"] or old.spec != tspec:
                st.problem(spec.filename, line, "spec",
                           f"template {name!r} exists in the database with a different kind or spec")
            continue
        id_ = st.ids()
        st.tpl[name] = Template(id_, name, v["resource_kind"], v["device_type"] or "", v["vendor"] or "", tspec, False)
        st.rows["device_template"].append((id_, name, v["resource_kind"], v["device_type"] or "",
                                           v["vendor"] or "", v["spec"], v["version"] or 1))


_PARENT_COL = {"areas": ("parent", ("area",)), "addresses": ("parent", ("address",)),
               "duct_segments": ("duct", ("duct",)),
               "number_segments": ("pool", ("number_pool",))}
CHILD_COLS = {
    "area": ("id", "level", "code"),
    "site": ("id", "site_type", "area_id", "address_text", "location"),
    "address": ("id", "area_id", "district", "road", "number", "building", "unit", "floor", "room",
                "search_key", "location"),
    "manhole": ("id", "location"),
    "pole": ("id", "location"),
    "duct": ("id", "holes"),
    "duct_segment": ("id", "a_end_id", "z_end_id", "length_m", "route"),
    "frame": ("id", "frame_type", "site_id"),
    "cross_box": ("id", "capacity_pairs", "site_id", "template_id", "location"),
    "distribution_box": ("id", "medium", "capacity", "template_id", "location"),
    "device": ("id", "device_type", "site_id", "template_id", "vendor", "model", "technology", "management_ip",
               "split_ratio", "split_stage", "location"),
    "cable": ("id", "medium", "stage", "unit_count", "conductor_mm", "length_m", "a_end_id", "z_end_id", "route"),
    "number_pool": ("id", "switch_id", "area_code", "quarantine_days"),
    "number_segment": ("id", "exchange_code", "first", "last"),
}


def resources(st: ImportState, reader: BundleReader, name: str) -> None:
    fspec = FILE_BY_NAME[name]
    kind = fspec.resource_kind
    assert kind is not None
    f = fspec.filename
    st.cols["resource"] = RES_COLS
    st.cols[kind] = CHILD_COLS[kind]
    make_row = ROW_MAKERS[kind]
    for _, line, v in rows(st, reader, name):
        key = v["key"]
        if key in st.res:
            st.problem(f, line, "key", f"duplicate key {key!r} (keys are unique across all resource files)")
            continue
        if name == "number_segments":
            pool = ref(st, f, line, "pool", v["pool"], ("number_pool",))
            if not pool:
                continue
            ln = pool[2]
            v["name"] = f"{v['first']}-{v['last']}"
            v["status"] = fmt.STATUS.default
        else:
            ln = local_network(st, f, line, v["local_network"])
            if ln is None:
                continue
        ok = True
        parent = None
        if name in _PARENT_COL:
            col, kinds = _PARENT_COL[name]
            parent = ref(st, f, line, col, v.get(col), kinds, ln)
            ok = parent is not False
        elif "parent" in v or "site" in v:
            site = ref(st, f, line, "site", v.get("site"), ("site",), ln)
            par = ref(st, f, line, "parent", v.get("parent"), None, ln)
            ok = site is not False and par is not False
            parent = par or site
            v["_site"] = site[0] if site else None
        if not ok:
            continue
        parent_id = parent[0] if parent else None
        scope = parent_id or ln
        if (kind, scope, v["name"]) in st.scoped:
            st.problem(f, line, "name", f"a {kind} named {v['name']!r} already exists in this scope "
                                        f"({'its parent' if parent_id else 'the local network'})")
            continue
        id_ = st.ids()
        child = make_row(st, f, line, id_, ln, v)
        if child is None:
            continue
        st.scoped.add((kind, scope, v["name"]))
        st.res[key] = (id_, kind, ln)
        st.rows["resource"].append((id_, kind, v["name"], ln, parent_id, scope, v["status"], st.now_stored))
        st.rows[kind].append(child)


# -- one row maker per kind: (state, file, line, new id, ln id, parsed row) -> child row or None --

def _area(st, f, line, id_, ln, v):
    return (id_, v["level"], v["code"] or "")


def _site(st, f, line, id_, ln, v):
    ok, area = ref_id(st, f, line, "area", v["area"], ("area",), ln)
    return (id_, v["site_type"], area, v["address_text"] or "", v["location"]) if ok else None


def _address(st, f, line, id_, ln, v):
    ok, area = ref_id(st, f, line, "area", v["area"], ("area",), ln)
    if not ok:
        return None
    search_key = normalise(v["search_key"] if v["search_key"] is not None else v["name"])
    return (id_, area, *(v[c] or "" for c in ("district", "road", "number", "building", "unit", "floor", "room")),
            search_key, v["location"])


def _located(st, f, line, id_, ln, v):
    return (id_, v["location"])


def _duct(st, f, line, id_, ln, v):
    return (id_, v["holes"])


def _ends(st, f, line, ln, v):
    ok_a, a = ref_id(st, f, line, "a_end", v["a_end"], None, ln)
    ok_z, z = ref_id(st, f, line, "z_end", v["z_end"], None, ln)
    return ok_a and ok_z, a, z


def _duct_segment(st, f, line, id_, ln, v):
    ok, a, z = _ends(st, f, line, ln, v)
    if not ok:
        return None
    length = v["length_m"] if v["length_m"] is not None else (length_m(v["route"]) if v["route"] else 0.0)
    return (id_, a, z, length, v["route"])


def _template_for(st, f, line, v, resource_kind):
    name = v.get("template")
    if name is None:
        return True, None
    tpl = st.tpl.get(name)
    if tpl is None:
        st.problem(f, line, "template", f"unknown template {name!r}")
        return False, None
    if tpl.resource_kind != resource_kind:
        st.problem(f, line, "template", f"template {name!r} is for {tpl.resource_kind}, not {resource_kind}")
        return False, None
    if tpl.spec is None:
        st.problem(f, line, "template", f"template {name!r} has an invalid spec")
        return False, None
    return True, tpl


def _owner(st, kind, id_, ln, v, tpl):
    mode = v.get("units") or "template"
    if tpl is None:
        mode = "listed"
    owner = st.owners[v["key"]] = Owner(id_, kind, ln, v["name"], mode, tpl, key=v["key"])
    if mode == "template":
        owner.base = st.ids.reserve(len(derived(st, owner)[1]))


def _frame(st, f, line, id_, ln, v):
    ok, tpl = _template_for(st, f, line, v, "frame")
    if not ok:
        return None
    _owner(st, "frame", id_, ln, v, tpl)
    return (id_, v["frame_type"], v["_site"])


def _cross_box(st, f, line, id_, ln, v):
    ok, tpl = _template_for(st, f, line, v, "cross_box")
    if not ok:
        return None
    _owner(st, "cross_box", id_, ln, v, tpl)
    return (id_, v["capacity_pairs"], v["_site"], tpl.id if tpl else None, v["location"])


def _distribution_box(st, f, line, id_, ln, v):
    ok, tpl = _template_for(st, f, line, v, "distribution_box")
    if not ok:
        return None
    _owner(st, "distribution_box", id_, ln, v, tpl)
    return (id_, v["medium"], v["capacity"], tpl.id if tpl else None, v["location"])


def _device(st, f, line, id_, ln, v):
    ok, tpl = _template_for(st, f, line, v, "device")
    if not ok:
        return None
    if tpl is not None and tpl.device_type and tpl.device_type != v["device_type"]:
        st.problem(f, line, "template", f"template {tpl.name!r} makes {tpl.device_type}, not {v['device_type']}")
        return None
    ip = v["management_ip"]
    if ip:
        other = st.management_ips.get(ip)
        if other is not None:
            st.problem(f, line, "management_ip", f"management address {ip!r} is already the device "
                       f"{other!r}'s" if other else f"management address {ip!r} is already a device's in the database")
            return None
        st.management_ips[ip] = v["key"]
    split_ratio = v["split_ratio"] if v["split_ratio"] is not None else (tpl.spec.split_ratio if tpl else None)
    _owner(st, "device", id_, ln, v, tpl)
    return (id_, v["device_type"], v["_site"], tpl.id if tpl else None, v["vendor"] or "", v["model"] or "",
            v["technology"] or "", v["management_ip"] or "", split_ratio, v["split_stage"], v["location"])


def _cable(st, f, line, id_, ln, v):
    ok, a, z = _ends(st, f, line, ln, v)
    if not ok or (v["stage"] == "trunk" and not _trunk_ok(st, f, line, v)):
        return None
    length = v["length_m"] if v["length_m"] is not None else (length_m(v["route"]) if v["route"] else 0.0)
    st.owners[v["key"]] = Owner(id_, "cable", ln, v["name"], "cable", medium=v["medium"],
                                count=v["unit_count"], key=v["key"], base=st.ids.reserve(v["unit_count"]))
    return (id_, v["medium"], v["stage"], v["unit_count"],
            v["conductor_mm"] if v["medium"] == "copper" else None, length, a, z, v["route"])


def _trunk_ok(st, f, line, v) -> bool:
    """A trunk cable is an inter-site fibre link: its ends are two different sites."""
    if v["medium"] != "fibre":
        st.problem(f, line, "medium", "a trunk cable is a fibre cable between two sites")
        return False
    for col in ("a_end", "z_end"):
        key = v[col]
        if key is None:
            st.problem(f, line, col, "a trunk cable runs between two sites: a_end and z_end name them")
            return False
        kind = st.res[key][1]
        if kind != "site":
            st.problem(f, line, col, f"a trunk cable runs between two sites: {key!r} is a {kind}")
            return False
    if v["a_end"] == v["z_end"]:
        st.problem(f, line, "z_end", f"a trunk cable joins two different sites, not {v['a_end']!r} to itself")
        return False
    return True


def _device_type(st: ImportState, device_id: str) -> str | None:
    if st.device_types is None:
        st.device_types = {r[0]: r[1] for r in st.rows["device"]}
    return st.device_types.get(device_id)


def _number_pool(st, f, line, id_, ln, v):
    ok, switch = ref_id(st, f, line, "switch", v["switch"], ("device",), ln)
    if not ok:
        return None
    if switch and _device_type(st, switch) not in SWITCH_TYPES:
        st.problem(f, line, "switch", "a number pool belongs to a PSTN switch, softswitch or access gateway")
        return None
    area_code = next(c[1] for c in st.ln.values() if c[0] == ln)
    st.owners[v["key"]] = Owner(id_, "number_pool", ln, v["name"], "pool", key=v["key"])
    return (id_, switch, area_code, v["quarantine_days"])


ROW_MAKERS: dict[str, Callable[..., Any]] = {
    "area": _area, "site": _site, "address": _address, "manhole": _located, "pole": _located, "duct": _duct,
    "duct_segment": _duct_segment, "frame": _frame, "cross_box": _cross_box,
    "distribution_box": _distribution_box, "device": _device, "cable": _cable, "number_pool": _number_pool,
    "number_segment": numbers.segment_row,
}


# -- files that only link resources --------------------------------------------------------------

def cable_spans(st: ImportState, reader: BundleReader) -> None:
    st.cols["cable_span"] = ("cable_id", "seq", "duct_segment_id")
    seen: set[tuple[str, int]] = set()
    for spec, line, v in rows(st, reader, "cable_spans"):
        cable = ref(st, spec.filename, line, "cable", v["cable"], ("cable",))
        seg = ref(st, spec.filename, line, "duct_segment", v["duct_segment"], ("duct_segment",))
        if not cable or not seg:
            continue
        if (cable[0], v["seq"]) in seen:
            st.problem(spec.filename, line, "seq", f"duplicate seq {v['seq']} for this cable")
            continue
        seen.add((cable[0], v["seq"]))
        st.rows["cable_span"].append((cable[0], v["seq"], seg[0]))


def coverage(st: ImportState, reader: BundleReader) -> None:
    st.cols["coverage"] = ("box_id", "address_id", "distance_m")
    seen: set[tuple[str, str]] = set()
    for spec, line, v in rows(st, reader, "coverage"):
        box = ref(st, spec.filename, line, "box", v["box"], ("distribution_box",))
        addr = ref(st, spec.filename, line, "address", v["address"], ("address",))
        if not box or not addr:
            continue
        if (box[0], addr[0]) in seen:
            st.problem(spec.filename, line, "address", "duplicate coverage row")
            continue
        seen.add((box[0], addr[0]))
        st.rows["coverage"].append((box[0], addr[0], v["distance_m"]))
