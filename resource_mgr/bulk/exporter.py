"""Export the database (or one local network) to a bundle (format.py).

Keys are derived from names, never ids: `<ln>/<kind>:<name>` for a resource without a parent,
`<parent key>/<kind>:<name>` below a parent; services are numbered `<ln>-S<nnnnnnnn>` in a
deterministic order. Every file is sorted and every value formatted canonically, so export →
import into a fresh database → export gives the same bytes.

A device / box made from a template whose cards and units are still exactly what the template
makes is written with `units=template` and only its units that differ from the template's
defaults (capacity, admin state ...) go to units.csv; anything else (frames, which do not keep
their template, and changed devices) is written `units=listed` with every card and unit.
"""
from __future__ import annotations

import time
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sqlalchemy import func, select

from resource_mgr.bulk import format as fmt
from resource_mgr.bulk.format import BundleWriter, unit_ref
from resource_mgr.bulk.importing.numbers import FastGrader
from resource_mgr.bulk.importing.state import Owner as _Owner, Template as _Tpl
from resource_mgr.bulk.importing.units import derive
from resource_mgr.db import Database
from resource_mgr.states import AdminState, Occupancy
from resource_mgr.errors import Invalid, NotFound
from resource_mgr.inventory import naming
from resource_mgr.inventory.templates import parse_spec
from resource_mgr.models import (
    Address, Area, Cable, CableSpan, Card, Connection, Coverage, CrossBox, Customer, Device, DeviceTemplate,
    DistributionBox, Duct, DuctSegment, Frame, LocalNetwork, Manhole, NamingRule, Number, NumberPool,
    NumberSegment, Pole, Resource, Service, ServiceUnit, SharedHold, Site, Unit,
)

ProgressFn = Callable[[int, int], None]
STREAM = 20_000


@dataclass
class ExportReport:
    counts: dict[str, int] = field(default_factory=dict)
    seconds: float = 0.0
    warnings: list[str] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return {"counts": self.counts, "seconds": round(self.seconds, 2), "warnings": self.warnings}


def export_bundle(database: Database, out_dir: str | Path, *, local_network: str | None = None,
                  progress: ProgressFn | None = None) -> ExportReport:
    return Exporter(database, out_dir, local_network=local_network, progress=progress).run()


class Exporter:
    def __init__(self, database: Database, out_dir: str | Path, *, local_network: str | None = None,
                 progress: ProgressFn | None = None) -> None:
        self.db = database
        self.out = Path(out_dir)
        self.ln_code = local_network
        self._progress = progress
        self.report = ExportReport()
        self.done = 0
        self.total = 0
        self._last = 0.0

    def tick(self, n: int = 1, force: bool = False) -> None:
        self.done += n
        if self._progress and (force or time.monotonic() - self._last > 0.2):
            self._last = time.monotonic()
            self._progress(self.done, max(self.total, self.done))

    def _where(self, column: Any) -> list[Any]:
        return [column == self.ln_id] if self.ln_id else []

    def _stream(self, s: Any, stmt: Any):
        for row in s.execute(stmt.execution_options(yield_per=STREAM)):
            self.tick()
            yield row

    def run(self) -> ExportReport:
        started = time.monotonic()
        with self.db.read_session() as s:
            lns = s.execute(select(LocalNetwork).order_by(LocalNetwork.code)).scalars().all()
            self.ln_id = None
            if self.ln_code:
                match = [ln for ln in lns if ln.code == self.ln_code]
                if not match:
                    raise NotFound(f"no local network {self.ln_code}", field="local_network")
                lns = match
                self.ln_id = match[0].id
            self.codes = {ln.id: ln.code for ln in lns}
            self.total = s.scalar(select(func.count()).select_from(Unit)
                                  .where(*self._where(Unit.local_network_id))) or 0
            self._load_resources(s)
            with BundleWriter(self.out) as w:
                self.w = w
                w.write_many("local_networks", (dict(code=ln.code, name=ln.name, area_code=ln.area_code,
                                                     province=ln.province) for ln in lns))
                self._naming_rules(s)
                self._templates(s)
                self._resources(s)
                self._units(s)
                self._numbers(s)
                self._connections(s)
                self._coverage(s)
                self._services(s)
                self.report.counts = dict(w.counts)
        self.report.seconds = time.monotonic() - started
        self.tick(0, force=True)
        return self.report

    # -- keys ----------------------------------------------------------------------------------

    def _load_resources(self, s: Any) -> None:
        info: dict[str, tuple[str, str, str, str | None]] = {}
        stmt = select(Resource.id, Resource.kind, Resource.name, Resource.local_network_id, Resource.parent_id)
        for id_, kind, name, ln, parent in s.execute(stmt.where(*self._where(Resource.local_network_id))):
            info[id_] = (kind, name, ln, parent)
        keys: dict[str, str] = {}

        def key(id_: str) -> str:
            chain = []
            cur: str | None = id_
            while cur is not None and cur not in keys:
                chain.append(cur)
                cur = info[cur][3] if cur in info else None
            base = keys.get(cur) if cur is not None else None
            for c in reversed(chain):
                kind, name, ln, _ = info[c]
                base = f"{base if base is not None else self.codes.get(ln, ln)}/{kind}:{name}"
                keys[c] = base
            return keys[id_]

        for id_ in info:
            key(id_)
        self.info = info
        self.keys = keys

    # -- small files ---------------------------------------------------------------------------

    def _naming_rules(self, s: Any) -> None:
        rows = []
        for ln, kind, pattern in s.execute(select(NamingRule.local_network_id, NamingRule.kind, NamingRule.pattern)
                                           .where(*self._where(NamingRule.local_network_id))):
            if ln in self.codes and naming.DEFAULT_RULES.get(kind) != pattern:
                rows.append(dict(local_network=self.codes[ln], kind=kind, pattern=pattern))
        self.rules: dict[str, dict[str, str]] = {ln: dict(naming.DEFAULT_RULES) for ln in self.codes}
        for ln, kind, pattern in s.execute(select(NamingRule.local_network_id, NamingRule.kind, NamingRule.pattern)):
            if ln in self.rules:
                self.rules[ln][kind] = pattern
        self.w.write_many("naming_rules", sorted(rows, key=lambda r: (r["local_network"], r["kind"])))

    def _templates(self, s: Any) -> None:
        self.tpl_by_id: dict[str, _Tpl] = {}
        rows = []
        for t in s.scalars(select(DeviceTemplate).order_by(DeviceTemplate.name)):
            try:
                spec = parse_spec(t.spec)
            except Invalid:
                spec = None
            self.tpl_by_id[t.id] = _Tpl(t.id, t.name, t.resource_kind, t.device_type, t.vendor, spec, True)
            rows.append(dict(name=t.name, resource_kind=t.resource_kind, device_type=t.device_type, vendor=t.vendor,
                             spec=t.spec, version=t.version))
        self.w.write_many("templates", rows)

    # -- resources -----------------------------------------------------------------------------

    def _base(self, r: Any) -> dict[str, Any]:
        return dict(key=self.keys[r.id], local_network=self.codes[r.local_network_id], name=r.name, status=r.status)

    def _k(self, id_: str | None) -> str | None:
        return self.keys.get(id_) if id_ else None

    def _site_parent(self, r: Any) -> dict[str, Any]:
        site = getattr(r, "site_id", None)
        return dict(site=self._k(site), parent=self._k(r.parent_id) if r.parent_id != site else None)

    def _resources(self, s: Any) -> None:
        # Which owners keep their template's cards and units: decided by looking at the units.
        self.owner_mode: dict[str, str] = {}
        self.unit_rows: list[dict[str, Any]] = []
        self.card_rows: list[dict[str, Any]] = []
        self._decide_owners(s)
        plans = [
            ("areas", Area, lambda r: dict(parent=self._k(r.parent_id), level=r.level, code=r.code)),
            ("sites", Site, lambda r: dict(site_type=r.site_type, area=self._k(r.area_id),
                                           address_text=r.address_text, location=r.location)),
            ("addresses", Address, lambda r: dict(parent=self._k(r.parent_id), area=self._k(r.area_id),
                                                  district=r.district, road=r.road,
                                                  number=r.number, building=r.building, unit=r.unit, floor=r.floor,
                                                  room=r.room, search_key=r.search_key, location=r.location)),
            ("manholes", Manhole, lambda r: dict(location=r.location)),
            ("poles", Pole, lambda r: dict(location=r.location)),
            ("ducts", Duct, lambda r: dict(holes=r.holes)),
            ("duct_segments", DuctSegment, lambda r: dict(duct=self._k(r.parent_id), a_end=self._k(r.a_end_id),
                                                          z_end=self._k(r.z_end_id), length_m=r.length_m,
                                                          route=r.route)),
            ("frames", Frame, lambda r: dict(frame_type=r.frame_type, units="listed", **self._site_parent(r))),
            ("cross_boxes", CrossBox, lambda r: dict(capacity_pairs=r.capacity_pairs, location=r.location,
                                                     **self._tpl_cols(r), **self._site_parent(r))),
            ("distribution_boxes", DistributionBox, lambda r: dict(medium=r.medium, capacity=r.capacity,
                                                                   location=r.location, **self._tpl_cols(r),
                                                                   site=None, parent=self._k(r.parent_id))),
            ("devices", Device, lambda r: dict(device_type=r.device_type, vendor=r.vendor, model=r.model,
                                               technology=r.technology, management_ip=r.management_ip,
                                               split_ratio=r.split_ratio, split_stage=r.split_stage,
                                               location=r.location, **self._tpl_cols(r), **self._site_parent(r))),
            ("cables", Cable, lambda r: dict(medium=r.medium, stage=r.stage, unit_count=r.unit_count,
                                             conductor_mm=r.conductor_mm, length_m=r.length_m,
                                             a_end=self._k(r.a_end_id), z_end=self._k(r.z_end_id), route=r.route)),
        ]
        for name, model, extra in plans:
            rows = []
            for r in s.scalars(select(model).where(*self._where(Resource.local_network_id))
                               .execution_options(yield_per=STREAM)):
                row = self._base(r)
                row.update(extra(r))
                rows.append(row)
            rows.sort(key=lambda r: r["key"])
            self.w.write_many(name, rows)
            if name == "cables":
                spans = []
                for cable_id, seq, seg in s.execute(select(CableSpan.cable_id, CableSpan.seq, CableSpan.duct_segment_id)):
                    if cable_id in self.keys:
                        spans.append(dict(cable=self.keys[cable_id], seq=seq, duct_segment=self._k(seg)))
                self.w.write_many("cable_spans", sorted(spans, key=lambda r: (r["cable"], r["seq"])))
        pools = []
        for r in s.scalars(select(NumberPool).where(*self._where(Resource.local_network_id))):
            row = self._base(r)
            row.update(switch=self._k(r.switch_id), quarantine_days=r.quarantine_days)
            pools.append(row)
        self.w.write_many("number_pools", sorted(pools, key=lambda r: r["key"]))
        segs = []
        for r in s.scalars(select(NumberSegment).where(*self._where(Resource.local_network_id))):
            segs.append(dict(key=self.keys[r.id], pool=self._k(r.parent_id), first=r.first, last=r.last))
        self.w.write_many("number_segments", sorted(segs, key=lambda r: r["key"]))
        self.w.write_many("cards", sorted(self.card_rows, key=lambda r: (r["device"], r["name"])))

    def _tpl_cols(self, r: Any) -> dict[str, Any]:
        tpl = self.tpl_by_id.get(r.template_id) if r.template_id else None
        mode = self.owner_mode.get(r.id, "listed")
        return dict(template=tpl.name if tpl else None, units=mode if tpl else "listed")

    def _decide_owners(self, s: Any) -> None:
        """Stream every non-number unit, root by root, and compare with what the owner's template
        (or the cable's unit count) makes: same set → units=template and only the differences
        are listed; otherwise units=listed with every card and unit."""
        cache: dict[tuple, tuple] = {}

        def helper(owner: _Owner) -> tuple:
            if owner.derived is None:
                owner.derived = derive(self.rules[owner.ln], owner, cache)
            return owner.derived
        owners: dict[str, _Owner] = {}
        where = self._where(Resource.local_network_id)
        for model in (Device, CrossBox, DistributionBox):
            for id_, name, ln, tid in s.execute(select(model.id, Resource.name, Resource.local_network_id,
                                                       model.template_id).where(*where)):
                tpl = self.tpl_by_id.get(tid) if tid else None
                mode = "template" if tpl is not None and tpl.spec is not None else "listed"
                owners[id_] = _Owner(id_, model.__tablename__, ln, name, mode, tpl)
        for id_, name, ln in s.execute(select(Frame.id, Resource.name, Resource.local_network_id).where(*where)):
            owners[id_] = _Owner(id_, "frame", ln, name, "listed")
        for id_, name, ln, medium, count in s.execute(select(Cable.id, Resource.name, Resource.local_network_id,
                                                             Cable.medium, Cable.unit_count).where(*where)):
            owners[id_] = _Owner(id_, "cable", ln, name, "cable", medium=medium, count=count)
        cards: dict[str, list[tuple[str, int, str, str]]] = defaultdict(list)
        card_of: dict[str, tuple[int, str]] = {}
        for id_, parent, name, slot, ctype in s.execute(select(Card.id, Resource.parent_id, Resource.name, Card.slot,
                                                               Card.card_type).where(*where)):
            cards[parent].append((id_, slot, name, ctype))
            card_of[id_] = (slot, name)
        stmt = (select(Unit.root_id, Unit.owner_id, Unit.kind, Unit.name, Unit.seq, Unit.side, Unit.technology,
                       Unit.capacity, Unit.admin_state, Unit.locked_by, Unit.admin_reason)
                .where(Unit.kind != "number", *self._where(Unit.local_network_id)).order_by(Unit.root_id))
        group: list[Any] = []
        current = None
        for row in self._stream(s, stmt):
            if row[0] != current:
                if group:
                    self._owner_units(helper, owners.get(current), group, cards.get(current, []), card_of)
                group, current = [], row[0]
            group.append(row)
        if group:
            self._owner_units(helper, owners.get(current), group, cards.get(current, []), card_of)
        for id_, owner in owners.items():  # owners without any unit
            if id_ not in self.owner_mode:
                self._owner_units(helper, owner, [], cards.get(id_, []), card_of)

    def _owner_units(self, helper: Any, owner: _Owner | None, units: list[Any], cards: list[tuple],
                     card_of: dict[str, tuple[int, str]]) -> None:
        if owner is None:
            if units:
                self.report.warnings.append(f"{len(units)} units of {units[0][0]} have no exportable owner")
            return
        root_key = self.keys[owner.id]
        mode = owner.mode
        derived = None
        if mode in ("template", "cable"):
            try:
                dcards, dunits, index = helper(owner)
            except Invalid:
                dcards, dunits, index = [], [], {}
            same = len(dunits) == len(units) and sorted((c[1], c[2], c[3]) for c in cards) == sorted(dcards)
            if same:
                for u in units:
                    i = index.get((u[2], u[3]))
                    card_slot = card_of[u[1]][0] if u[1] != owner.id else None
                    if i is None or dunits[i][0] != card_slot:
                        same = False
                        break
            if same:
                derived = (dunits, index)
            elif mode == "cable":
                self.report.warnings.append(f"cable {root_key}: its units differ from 1..unit_count; "
                                            "exported as if derived")
                derived = (dunits, index)
            else:
                mode = "listed"
        self.owner_mode[owner.id] = mode if mode != "cable" else "template"
        if derived is not None:
            dunits, index = derived
            for u in units:
                i = index.get((u[2], u[3]))
                if i is None:
                    continue
                _, kind, name, seq, cap, tech, side = dunits[i]
                row: dict[str, Any] = {}
                if u[4] != seq:
                    row["seq"] = u[4]
                if (u[5] or "") != (side or ""):
                    row["side"] = u[5]
                if (u[6] or "") != (tech or ""):
                    row["technology"] = u[6]
                if u[7] != cap:
                    row["capacity"] = u[7]
                if u[8] != AdminState.IN_SERVICE:
                    row["admin_state"] = u[8]
                    row["locked_by"] = u[9] if u[8] == AdminState.LOCKED else None
                if u[10]:
                    row["admin_reason"] = u[10]
                if row:
                    row["unit"] = unit_ref(root_key, kind, name)
                    self.unit_rows.append(row)
            return
        for cid, slot, name, ctype in cards:
            self.card_rows.append(dict(device=root_key, name=name, slot=slot, card_type=ctype))
        for u in units:
            row = dict(unit=unit_ref(root_key, u[2], u[3]), card=card_of[u[1]][1] if u[1] != owner.id else None,
                       seq=u[4], side=u[5] or None, technology=u[6] or None, capacity=u[7],
                       admin_state=u[8] if u[8] != AdminState.IN_SERVICE else None,
                       locked_by=u[9] if u[8] == AdminState.LOCKED else None, admin_reason=u[10])
            self.unit_rows.append(row)

    def _units(self, s: Any) -> None:
        self.w.write_many("units", sorted(self.unit_rows, key=lambda r: r["unit"]))
        self.unit_rows = []

    def _numbers(self, s: Any) -> None:
        grader = FastGrader()
        rows = []
        stmt = (select(Number.number, Number.grade, Number.grade_level, Unit.admin_state, Unit.admin_reason,
                       Unit.quarantine_until, Number.pool_id).join(Unit, Unit.id == Number.id)
                .where(*self._where(Unit.local_network_id)))
        for number, grade, level, admin, reason, q, pool_id in self._stream(s, stmt):
            dgrade, dlevel = grader.grade(number)
            row: dict[str, Any] = {}
            if (grade, level) != (dgrade, dlevel):
                row.update(grade=grade, grade_level=level)
            if admin not in (AdminState.IN_SERVICE, AdminState.LOCKED):
                row["admin_state"] = admin
            if reason and admin not in (AdminState.IN_SERVICE, AdminState.LOCKED):
                row["admin_reason"] = reason
            if q is not None:
                row["quarantine_until"] = q
            if row:
                # the pool names the local network: another may have the same local number
                row.update(number=number, pool=self._k(pool_id))
                rows.append(row)
        self.w.write_many("numbers", sorted(rows, key=lambda r: (r["number"], r["pool"] or "")))

    # -- relations and services ----------------------------------------------------------------

    def _unit_ref_sql(self, alias: Any) -> tuple[Any, Any, Any]:
        return alias.root_id, alias.kind, alias.name

    def _ref(self, root: str, kind: str, name: str) -> str:
        return unit_ref(self.keys[root], kind, name)

    def _connections(self, s: Any) -> None:
        from sqlalchemy.orm import aliased
        ua, uz = aliased(Unit), aliased(Unit)
        stmt = (select(Connection.kind, ua.root_id, ua.kind, ua.name, uz.root_id, uz.kind, uz.name,
                       Connection.container_id)
                .join(ua, ua.id == Connection.a_unit_id).join(uz, uz.id == Connection.z_unit_id)
                .where(*self._where(Connection.local_network_id)))
        rows = []
        for kind, ar, ak, an, zr, zk, zn, container in self._stream(s, stmt):
            rows.append((self._ref(ar, ak, an), self._ref(zr, zk, zn), kind, self._k(container)))
        rows.sort()
        self.w.write_many("connections", (dict(a=a, z=z, kind=k, container=c) for a, z, k, c in rows))

    def _coverage(self, s: Any) -> None:
        rows = []
        for box, addr, dist in s.execute(select(Coverage.box_id, Coverage.address_id, Coverage.distance_m)):
            if box in self.keys and addr in self.keys:
                rows.append(dict(box=self.keys[box], address=self.keys[addr], distance_m=dist))
        self.w.write_many("coverage", sorted(rows, key=lambda r: (r["box"], r["address"])))

    def _services(self, s: Any) -> None:
        customers = []
        cust_ref: dict[str, str] = {}
        for id_, ln, ref, name, grade in s.execute(select(Customer.id, Customer.local_network_id, Customer.external_ref,
                                                          Customer.name, Customer.grade)
                                                   .where(*self._where(Customer.local_network_id))):
            cust_ref[id_] = ref
            customers.append(dict(key=ref, local_network=self.codes[ln], name=name, grade=grade))
        self.w.write_many("customers", sorted(customers, key=lambda r: (r["local_network"], r["key"])))
        paths: dict[str, list[tuple[int, str]]] = defaultdict(list)
        stmt = (select(ServiceUnit.service_id, ServiceUnit.seq, Unit.root_id, Unit.kind, Unit.name)
                .join(Unit, Unit.id == ServiceUnit.unit_id).where(*self._where(Unit.local_network_id)))
        for sid, seq, root, kind, name in self._stream(s, stmt):
            paths[sid].append((seq, self._ref(root, kind, name)))
        services = []
        fdt = fmt.FILE_BY_NAME["services"].by_name["created_at"]
        for r in s.execute(select(Service).where(*self._where(Service.local_network_id))
                           .execution_options(yield_per=STREAM)).scalars():
            path = tuple(sorted(paths.get(r.id, ())))
            row = dict(local_network=self.codes[r.local_network_id], product=r.product, technology=r.technology,
                       state=r.state, customer=cust_ref.get(r.customer_id), address=self._k(r.address_id),
                       number=r.number, order_ref=r.order_ref, created_at=r.created_at, removed_at=r.removed_at)
            sort = (row["local_network"], fmt.format_value(fdt, r.created_at), row["customer"] or "",
                    row["address"] or "", r.number or "", r.product, r.technology, r.state, r.order_ref or "",
                    fmt.format_value(fdt, r.removed_at), path)
            services.append((sort, row, path, r.id, r.bearer_id))
        # a rider sorts after its bearer's sort key, so that the same data gives the same keys
        sort_of = {t[3]: t[0] for t in services}
        services.sort(key=lambda t: (t[0], sort_of[t[4]]) if t[4] in sort_of else (t[0], ()))
        seq_by_ln: dict[str, int] = defaultdict(int)
        rows, path_rows = [], []
        key_of: dict[str, str] = {}
        for _, row, path, id_, _bearer in services:
            seq_by_ln[row["local_network"]] += 1
            row["key"] = key_of[id_] = f"{row['local_network']}-S{seq_by_ln[row['local_network']]:08d}"
            rows.append(row)
            for seq, ref in path:
                path_rows.append(dict(service=row["key"], seq=seq, unit=ref))
        for row, (*_, bearer) in zip(rows, services):
            row["bearer"] = key_of.get(bearer)
        self.w.write_many("services", rows)
        self.w.write_many("service_paths", path_rows)
        del services, paths
        holds = []
        stmt = (select(Unit.root_id, Unit.kind, Unit.name, Unit.reservation_id, Unit.preoccupied_until)
                .where(Unit.occupancy == Occupancy.PREOCCUPIED, Unit.capacity == 1, Unit.reservation_id.is_not(None),
                       *self._where(Unit.local_network_id)))
        for root, kind, name, res, until in self._stream(s, stmt):
            holds.append(dict(unit=self._ref(root, kind, name), reservation=res, until=until))
        stmt = (select(Unit.root_id, Unit.kind, Unit.name, SharedHold.holder, SharedHold.expires_at)
                .join(Unit, Unit.id == SharedHold.unit_id).where(*self._where(Unit.local_network_id)))
        for root, kind, name, res, until in self._stream(s, stmt):
            holds.append(dict(unit=self._ref(root, kind, name), reservation=res, until=until))
        self.w.write_many("preoccupations", sorted(holds, key=lambda r: (r["unit"], r["reservation"])))
