"""A small hand-built network for the orders tests, and a stand-in for the path design on it, so
these tests look at the orders' own rules (idempotency, lifecycle, numbers, expiry, bad input)
whatever the real design prefers. The stand-in follows design_path's contract on this world: FTTH = [a free port of the
fibre box covering the address, a PON port with room]; POTS = [a free port of the copper box,
a free switch line port]; it locks what it chooses and never takes a held, locked or faulty unit.

    GZ ── site GZ-TH: OLT (GPON, 64 ONTs a port), PSTN switch (line ports) with a pool of 20 numbers
          FAT-8 (fibre) and DIST-BOX-10 (copper) covering addresses A1 and A2
    FS ── a pool with the same local numbers (a number of another local network)
"""
from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import select

from resource_mgr.errors import NoCapacity
from resource_mgr.inventory import services as inv
from resource_mgr.inventory.models import Address, Coverage, Site
from resource_mgr.numbers import services as numbers
from resource_mgr.occupancy import ledger
from resource_mgr.occupancy.models import Unit


def build(db, networks: dict[str, str]) -> dict[str, Any]:
    with db.unit_of_work() as uow:
        s = uow.session
        inv.seed_default_templates(s)
        gz, fs = networks["GZ"], networks["FS"]
        site = inv.add_resource(s, Site(name="GZ-TH", local_network_id=gz))
        a1 = inv.add_resource(s, Address(name="A1", local_network_id=gz, search_key="a1", road="天河路", number="1"))
        a2 = inv.add_resource(s, Address(name="A2", local_network_id=gz, search_key="a2", road="天河路", number="2"))
        fat = inv.create_from_template(s, template="FAT-8", local_network_id=gz, site_id=site.id)
        copper = inv.create_from_template(s, template="DIST-BOX-10", local_network_id=gz, site_id=site.id)
        olt = inv.create_from_template(s, template="OLT-GPON-17x16", local_network_id=gz, site_id=site.id)
        switch = inv.create_from_template(s, template="PSTN-SWITCH-20x128", local_network_id=gz, site_id=site.id)
        for box in (fat, copper):
            for a in (a1, a2):
                s.add(Coverage(box_id=box.id, address_id=a.id, distance_m=50.0))
        pool = numbers.create_pool(s, local_network_id=gz, name="GZ-POOL", switch_id=switch.id, quarantine_days=30)
        numbers.add_segment(s, pool_id=pool.id, first="87650000", last="87650019")
        fs_pool = numbers.create_pool(s, local_network_id=fs, name="FS-POOL")
        numbers.add_segment(s, pool_id=fs_pool.id, first="66660000", last="66660003")
        uow.commit()
        ids = dict(site=site.id, a1=a1.id, a2=a2.id, fat=fat.id, copper=copper.id, olt=olt.id, switch=switch.id,
                   pool=pool.id)
    with db.read_session() as s:
        ids["fat_ports"] = list(s.scalars(select(Unit.id).where(Unit.owner_id == fat.id).order_by(Unit.seq)))
    return ids


# -- the stand-in design ---------------------------------------------------------------------------

class NoDesign(NoCapacity):
    pass


@dataclass
class Design:
    technology: str
    address_id: str
    box_id: str | None
    hops: list[dict[str, Any]]
    work: list[dict[str, Any]] = field(default_factory=list)
    line_port_switch_id: str | None = None

    @property
    def unit_ids(self) -> list[str]:
        return [h["unit_id"] for h in self.hops]

    def as_json(self) -> dict[str, Any]:
        return {"technology": self.technology, "hops": self.hops, "work": self.work, "loop_m": None,
                "loss_db": None, "optic_class": None, "budget_db": None, "max_down_mbps": None}


def _pick(session, now: datetime, avoid, *where) -> Unit | None:
    stmt = (select(Unit).where(*where, Unit.choosable(now), Unit.id.not_in(sorted(avoid) or [""]))
            .order_by(Unit.seq, Unit.id).limit(1))
    for unit in ledger.lock_query(session, stmt, skip_locked=True) or ledger.lock_query(session, stmt):
        if unit.spare(now):
            return unit
    return None


def design_path(session, *, address_id, technology, settings, now, min_down_mbps=None, avoid=frozenset(),
                keep=(), lock=False, reservation_id=None) -> Design:
    from resource_mgr.inventory.models import Device, DistributionBox

    medium = "fibre" if technology == "FTTH" else "copper"
    boxes = select(Coverage.box_id).join(DistributionBox, DistributionBox.id == Coverage.box_id).where(
        Coverage.address_id == address_id, DistributionBox.medium == medium)
    kept = [u for u in keep if u not in avoid]
    port = None
    for uid in kept:  # a kept box port stays
        unit = session.get(Unit, uid)
        if unit is not None and unit.kind == "box_port":
            port = unit
    port = port or _pick(session, now, avoid, Unit.kind == "box_port", Unit.root_id.in_(boxes))
    if port is None:
        raise NoDesign("every port of the box serving this address is taken", reasons=["box_full"],
                       reason_zh="分纖箱已滿", alternatives=[{"kind": "technology", "technology": "ADSL"}])
    if technology == "FTTH":
        head_kind, device_type = "pon_port", "olt"
    elif technology == "POTS":
        head_kind, device_type = "line_port", "pstn_switch"
    else:
        raise NoDesign(f"no {technology} here", reasons=["no_head_port"], alternatives=[])
    head = next((session.get(Unit, u) for u in kept if session.get(Unit, u).kind == head_kind), None)
    head = head or _pick(session, now, avoid, Unit.kind == head_kind, Unit.root_id.in_(
        select(Device.id).where(Device.device_type == device_type)))
    if head is None:
        raise NoDesign("no head port with room", reasons=["no_head_port"], alternatives=[])
    hops = [{"unit_id": u.id, "kind": u.kind, "name": u.name, "device": None, "site": None, "cable": None,
             "shared": u.capacity > 1} for u in (port, head)]
    return Design(technology=str(technology), address_id=address_id, box_id=port.root_id, hops=hops,
                  line_port_switch_id=head.root_id if technology == "POTS" else None)


def install_design(monkeypatch) -> None:
    """Put the stand-in in place of the real design for one test (this world is too small for
    the real one: no splitters, cores or frames); tests/e2e/test_orders_design.py runs the real one."""
    import resource_mgr.design

    monkeypatch.setattr(resource_mgr.design, "design_path", design_path)
