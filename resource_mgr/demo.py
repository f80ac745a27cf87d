"""A small, hand-built demo network (one local network, one exchange) made through the domain
services, so that `rmgr demo` shows a working system: FTTH (OLT → ODF → feeder fibre → 1:4 →
distribution fibre → 1:16 in a fibre access terminal), copper (switch / DSLAM → MDF → primary
cable → cross box → distribution cable → distribution box), a number pool, addresses with
coverage, and a few customers whose services occupy continuous paths."""
from __future__ import annotations

from typing import Any

from shapely.geometry import LineString, Point
from sqlalchemy import select
from sqlalchemy.orm import Session

from resource_mgr.customers.models import Customer, Service, ServiceUnit
from resource_mgr.db import Database
from resource_mgr.inventory import services as inv
from resource_mgr.inventory.models import Address, Coverage, LocalNetwork, Site
from resource_mgr.numbers import services as numbers
from resource_mgr.numbers.models import Number
from resource_mgr.occupancy.models import Change, Unit
from resource_mgr.states import CustomerGrade

DEMO_CODE = "GZ"
PRINCIPAL = "system:demo"

EXCHANGE = Point(113.3245, 23.1367)  # 天河 exchange
ADDRESSES = [
    # (district, road, number, building, lon, lat)
    ("天河區", "天河路", "385號", "太古匯一座", 113.3290, 23.1340),
    ("天河區", "天河路", "387號", "", 113.3300, 23.1342),
    ("天河區", "體育西路", "101號", "A棟", 113.3255, 23.1385),
    ("天河區", "體育西路", "103號", "B棟", 113.3258, 23.1392),
    ("天河區", "林和西路", "9號", "", 113.3268, 23.1455),
]


def _units(session: Session, owner_id: str, kind: str, side: str | None = None) -> list[Unit]:
    units = inv.units_of(session, owner_id, kind)
    if side is not None:
        units = [u for u in units if u.side == side]
    return sorted(units, key=lambda u: (u.owner_id, u.seq))


def _address(session: Session, ln: LocalNetwork, district: str, road: str, number: str, building: str,
             lon: float, lat: float) -> Address:
    text = f"廣州市{district}{road}{number}{building}"
    return inv.add_resource(session, Address(  # type: ignore[return-value]
        name=text, local_network_id=ln.id, district=district, road=road, number=number, building=building,
        search_key=text.replace(" ", "").lower(), location=Point(lon, lat)))


def _service(session: Session, ln: LocalNetwork, *, product: str, technology: str, customer: Customer,
             address: Address, path: list[Unit], number: Number | None = None, order_ref: str) -> Service:
    """A service occupying `path` (customer side first) and its number, as if committed."""
    service = Service(local_network_id=ln.id, product=product, technology=technology, customer_id=customer.id,
                      address_id=address.id, number=number.number if number else None, order_ref=order_ref)
    session.add(service)
    session.flush()
    change = Change(principal=PRINCIPAL, order_ref=order_ref, service_id=service.id, reason="demo data")
    hops = path + ([number.unit] if number else [])
    for seq, unit in enumerate(hops, 1):
        unit.occupy(change, service_id=service.id)
        service.path.append(ServiceUnit(service_id=service.id, seq=seq, unit_id=unit.id))
    session.flush()
    return service


def build_demo(db: Database) -> dict[str, Any]:
    """Build the demo network in one unit of work; if it is there already, describe it."""
    with db.unit_of_work(principal=PRINCIPAL) as uow:
        s = uow.session
        existing = s.scalar(select(LocalNetwork).where(LocalNetwork.code == DEMO_CODE))
        if existing is not None:
            return {"local_network": DEMO_CODE, "local_network_id": existing.id, "created": False}
        ln = inv.create_local_network(s, code=DEMO_CODE, name="廣州", area_code="20", province="廣東")
        inv.seed_default_templates(s)
        site = inv.add_resource(s, Site(name="天河局", local_network_id=ln.id, site_type="exchange",
                                        address_text="廣州市天河區天河路300號", location=EXCHANGE))
        addresses = [_address(s, ln, *a) for a in ADDRESSES]

        # -- FTTH: OLT → ODF → feeder core → 1:4 → distribution core → 1:16 → FAT port ----------
        olt = inv.create_from_template(s, template="OLT-GPON-17x16", local_network_id=ln.id, site_id=site.id,
                                       management_ip="10.20.1.10")
        odf = inv.create_from_template(s, template="ODF-576", local_network_id=ln.id, site_id=site.id)
        cabinet = Point(113.3275, 23.1370)
        split1 = inv.create_from_template(s, template="SPLITTER-1:4", local_network_id=ln.id, site_id=site.id,
                                          split_stage=1)
        feeder = inv.create_cable(s, local_network_id=ln.id, name="天河局-GL001", medium="fibre", unit_count=24,
                                  a_end_id=odf.id, z_end_id=split1.id, stage="feeder",
                                  route=LineString([EXCHANGE, cabinet]))
        pon = _units(s, olt.id, "pon_port")[0]
        odf_t = _units(s, odf.id, "terminal")[0]
        f_core = _units(s, feeder.id, "core")[0]
        s1_in = _units(s, split1.id, "splitter_in")[0]
        s1_out = _units(s, split1.id, "splitter_out")
        # The feeder and first stage carry the whole tree behind the PON port: shared units.
        for unit in (odf_t, f_core):
            unit.capacity = pon.capacity
        for unit in s1_out:
            unit.capacity = 16
        inv.connect(s, pon.id, odf_t.id, "patch")
        inv.connect(s, odf_t.id, f_core.id, "fixed")
        inv.connect(s, f_core.id, s1_in.id, "splice")

        fats, fat_ports = [], []
        for i, (box_point, covered) in enumerate([(Point(113.3292, 23.1345), addresses[0:2]),
                                                  (Point(113.3257, 23.1388), addresses[2:4])]):
            fat = inv.create_from_template(s, template="FAT-16", local_network_id=ln.id, location=box_point)
            split2 = inv.create_from_template(s, template="SPLITTER-1:16", local_network_id=ln.id,
                                              parent_id=fat.id, location=box_point, split_stage=2)
            dist = inv.create_cable(s, local_network_id=ln.id, name=f"天河局-GL1{i + 1:02d}", medium="fibre",
                                    unit_count=12, a_end_id=split1.id, z_end_id=fat.id, stage="distribution",
                                    route=LineString([cabinet, box_point]))
            d_core = _units(s, dist.id, "core")[0]
            d_core.capacity = 16
            s2_in = _units(s, split2.id, "splitter_in")[0]
            inv.connect(s, s1_out[i].id, d_core.id, "splice")
            inv.connect(s, d_core.id, s2_in.id, "splice")
            ports = _units(s, fat.id, "box_port")
            for out, port in zip(_units(s, split2.id, "splitter_out"), ports):
                inv.connect(s, out.id, port.id, "patch")
            for address in covered:
                s.add(Coverage(box_id=fat.id, address_id=address.id, distance_m=60.0))
            fats.append(fat)
            fat_ports.append((ports, _units(s, split2.id, "splitter_out"), s2_in, d_core, s1_out[i]))

        # -- copper: switch / DSLAM → MDF → primary cable → cross box → distribution → box ------
        switch = inv.create_from_template(s, template="PSTN-SWITCH-20x128", local_network_id=ln.id, site_id=site.id)
        dslam = inv.create_from_template(s, template="DSLAM-ADSL-16x64", local_network_id=ln.id, site_id=site.id)
        mdf = inv.create_from_template(s, template="MDF-2000", local_network_id=ln.id, site_id=site.id)
        box_site = Point(113.3262, 23.1440)
        cross = inv.create_from_template(s, template="CROSS-BOX-300", local_network_id=ln.id, location=box_site)
        primary = inv.create_cable(s, local_network_id=ln.id, name="天河局-DL001", medium="copper", unit_count=100,
                                   conductor_mm=0.4, a_end_id=mdf.id, z_end_id=cross.id,
                                   route=LineString([EXCHANGE, box_site]))
        dbox = inv.create_from_template(s, template="DIST-BOX-20", local_network_id=ln.id,
                                        location=Point(113.3268, 23.1453))
        distribution = inv.create_cable(s, local_network_id=ln.id, name="天河局-DL101", medium="copper",
                                        unit_count=20, conductor_mm=0.4, a_end_id=cross.id, z_end_id=dbox.id,
                                        stage="distribution", route=LineString([box_site, Point(113.3268, 23.1453)]))
        s.add(Coverage(box_id=dbox.id, address_id=addresses[4].id, distance_m=40.0))
        s.add(Coverage(box_id=dbox.id, address_id=addresses[2].id, distance_m=250.0))
        line_ports = _units(s, switch.id, "line_port")
        mdf_line = _units(s, mdf.id, "terminal", "line")
        mdf_equip = _units(s, mdf.id, "terminal", "equipment")
        p_pairs = _units(s, primary.id, "pair")
        x_feed = _units(s, cross.id, "terminal", "feeder")
        x_dist = _units(s, cross.id, "terminal", "distribution")
        d_pairs = _units(s, distribution.id, "pair")
        b_ports = _units(s, dbox.id, "box_port")
        copper_paths = []
        for n in range(10):
            inv.connect(s, line_ports[n].id, mdf_equip[n].id, "jumper")
            inv.connect(s, mdf_equip[n].id, mdf_line[n].id, "jumper", container_id=mdf.id)
            inv.connect(s, mdf_line[n].id, p_pairs[n].id, "fixed")
            inv.connect(s, p_pairs[n].id, x_feed[n].id, "fixed")
            inv.connect(s, x_feed[n].id, x_dist[n].id, "jumper", container_id=cross.id)
            inv.connect(s, x_dist[n].id, d_pairs[n].id, "fixed")
            inv.connect(s, d_pairs[n].id, b_ports[n].id, "fixed")
            copper_paths.append([b_ports[n], d_pairs[n], x_dist[n], x_feed[n], p_pairs[n], mdf_line[n],
                                 mdf_equip[n], line_ports[n]])

        pool = numbers.create_pool(s, local_network_id=ln.id, name="天河局-號碼池", switch_id=switch.id)
        segment = numbers.add_segment(s, pool_id=pool.id, first="87650000", last="87650999")
        number_rows = {n.number: n for n in s.scalars(select(Number).where(Number.segment_id == segment.id))}

        # -- customers and services -------------------------------------------------------------
        def customer(ref: str, name: str, grade: str = CustomerGrade.NORMAL) -> Customer:
            c = Customer(local_network_id=ln.id, external_ref=ref, name=name, grade=grade)
            s.add(c)
            s.flush()
            return c

        chen = customer("C0001", "陳大文")
        li = customer("C0002", "李小明")
        taikoo = customer("C0003", "太古匯商場管理有限公司", CustomerGrade.VIP)
        services = []
        for i, (who, address, k) in enumerate([(taikoo, addresses[0], 0), (chen, addresses[2], 1)]):
            ports, outs, s2_in, d_core, out1 = fat_ports[k]
            path = [ports[0], outs[0], s2_in, d_core, out1, s1_in, f_core, odf_t, pon]
            services.append(_service(s, ln, product="ftth_broadband", technology="FTTH", customer=who,
                                     address=address, path=path, order_ref=f"DEMO-FTTH-{i + 1}"))
        for i, (who, address, number) in enumerate([(li, addresses[4], "87650001"),
                                                    (taikoo, addresses[4], "87650888")]):
            if number not in number_rows:
                number = sorted(number_rows)[i + 2]
            services.append(_service(s, ln, product="pots", technology="POTS", customer=who, address=address,
                                     path=copper_paths[i], number=number_rows[number],
                                     order_ref=f"DEMO-POTS-{i + 1}"))
        summary = {
            "local_network": DEMO_CODE, "local_network_id": ln.id, "created": True, "site_id": site.id,
            "olt_id": olt.id, "odf_id": odf.id, "splitter_ids": [split1.id], "fat_ids": [f.id for f in fats],
            "switch_id": switch.id, "dslam_id": dslam.id, "mdf_id": mdf.id, "cross_box_id": cross.id,
            "distribution_box_id": dbox.id, "cable_ids": [feeder.id, primary.id, distribution.id],
            "number_pool_id": pool.id, "numbers": len(number_rows), "address_ids": [a.id for a in addresses],
            "customers": 3, "service_ids": [sv.id for sv in services],
        }
        uow.commit()
    return summary
