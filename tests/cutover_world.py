"""A small network for the cutover tests, built on DesignWorld (tests/design_world.py):

    copper (ADSL, 4 ports, every jumper made):
      box port k ─fixed─ distribution pair k (cable D1) ─fixed─ cross box dist. terminal k
        ─jumper─ feeder terminal k ─fixed─ primary pair k ─fixed─ MDF line terminal k
        ─jumper─ MDF equipment terminal k ─fixed─ DSLAM port k
      services on ports 1..3 (ADSL, the path above occupied); port 4 free
    a new distribution cable D2 (4 pairs, nothing connected): the cable replacement D1 → D2
    FTTH (GPON, a FAT of 4 ports behind 1:2 + 1:4 splitters) serving the same building:
      PON port ─ ODF terminal ─ feeder core ─ S1 ═ ─ distribution core ─ S2 ═ ─ riser core k ─ FAT port k

`snapshot(session)` is every unit and service, field by field, for the equality checks."""
from __future__ import annotations

from types import SimpleNamespace
from typing import Any

from sqlalchemy import select

from resource_mgr.customers.models import Customer, Service, ServiceUnit
from resource_mgr.inventory.models import Connection
from resource_mgr.occupancy.models import Change, SharedHold, SharedUse, Unit

from design_world import DesignWorld

CHANGE = Change(principal="test")


def serve(w: DesignWorld, units: list[str], *, product: str, technology: str, address: str,
          number: str | None = None, vip: bool = False) -> str:
    customer = Customer(local_network_id=w.ln, external_ref=f"C-{units[0][-6:]}", name=f"customer {units[0][-4:]}",
                        grade="vip" if vip else "normal")
    w.s.add(customer)
    w.s.flush()
    svc = Service(local_network_id=w.ln, product=product, technology=technology, address_id=address,
                  customer_id=customer.id, number=number)
    w.s.add(svc)
    w.s.flush()
    svc.path[:] = [ServiceUnit(service_id=svc.id, seq=i, unit_id=u) for i, u in enumerate(units, 1)]
    for u in units:
        w.s.get(Unit, u).occupy(CHANGE, service_id=svc.id)
    w.s.flush()
    return svc.id


def build(session: Any, code: str = "GZ") -> SimpleNamespace:
    w = DesignWorld(session, code=code)
    c = w.copper(ports=4, jumpered=4, mdf_jumpered=4)
    f = w.ftth(ports=4, building=c.building)
    w.cover(f.box, c.building)
    w.cover(c.box, c.building)
    d2 = w.cable("copper", 4, 300.0)
    new_pairs = [w.unit(d2, "pair", k) for k in range(1, 5)]
    services = []
    for k in range(3):
        path = [c.ports[k], c.pairs[k], c.dts[k], c.fts[k], c.ppairs[k], c.lts[k], c.ets[k], c.heads[k]]
        services.append(serve(w, path, product="adsl_broadband", technology="ADSL", address=c.building,
                              vip=k == 0))
    return SimpleNamespace(w=w, ln=w.ln, c=c, f=f, new_pairs=new_pairs, services=services, d2=d2)


_UNIT_SKIP = {"version"}


def snapshot(session: Any) -> dict[str, Any]:
    """Every unit, service, path hop, shared use and hold, and connection, field by field."""
    def rows(model: Any, key: Any, skip: set[str] = frozenset()) -> dict[Any, dict[str, Any]]:
        cols = [c.key for c in model.__table__.columns if c.key not in skip]
        return {key(o): {c: getattr(o, c) for c in cols} for o in session.scalars(select(model))}

    session.expire_all()
    return {
        "units": rows(Unit, lambda u: u.id, _UNIT_SKIP),
        "services": rows(Service, lambda s: s.id),
        "paths": rows(ServiceUnit, lambda r: (r.service_id, r.seq)),
        "uses": rows(SharedUse, lambda r: (r.unit_id, r.service_id)),
        "holds": rows(SharedHold, lambda r: (r.unit_id, r.holder), {"id"}),
        "connections": rows(Connection, lambda r: r.id),
    }


def diff(a: dict[str, Any], b: dict[str, Any]) -> list[str]:
    out = []
    for table in a:
        for key in sorted(set(a[table]) | set(b[table]), key=str):
            if a[table].get(key) != b[table].get(key):
                out.append(f"{table} {key}: {a[table].get(key)} != {b[table].get(key)}")
    return out
