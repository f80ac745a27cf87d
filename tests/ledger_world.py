"""The small network the ledger tests share.

    GZ ── site GZ-TH ──┬── distribution box DIST-BOX-10 (10 exclusive box ports)
                       └── OLT OLT-GPON-17x16 (GPON ports, 64 places each)
    and `services` FTTH services to put on them."""
from __future__ import annotations

from types import SimpleNamespace

from sqlalchemy import select

from resource_mgr.customers.models import Service
from resource_mgr.inventory import services as inv
from resource_mgr.inventory.models import Site
from resource_mgr.occupancy.models import Unit


class World(SimpleNamespace):
    def __getitem__(self, name: str):  # world["box"] as well as world.box
        return getattr(self, name)


def build_world(db, services: int = 6) -> World:
    with db.unit_of_work() as uow:
        s = uow.session
        inv.seed_default_templates(s)
        ln = inv.create_local_network(s, code="GZ", name="廣州", area_code="20")
        site = inv.add_resource(s, Site(name="GZ-TH", local_network_id=ln.id))
        box = inv.create_from_template(s, template="DIST-BOX-10", local_network_id=ln.id, site_id=site.id)
        olt = inv.create_from_template(s, template="OLT-GPON-17x16", local_network_id=ln.id, site_id=site.id)
        made = [Service(local_network_id=ln.id, product="ftth_broadband", technology="FTTH") for _ in range(services)]
        s.add_all(made)
        uow.commit()
    with db.read_session() as s:
        ports = list(s.scalars(select(Unit.id).where(Unit.owner_id == box.id).order_by(Unit.seq)))
        pons = list(s.scalars(select(Unit.id).where(Unit.root_id == olt.id, Unit.kind == "pon_port")
                              .order_by(Unit.id)))
    return World(ln=ln.id, site=site.id, box=box.id, olt=olt.id, ports=ports, pons=pons, pon=pons[0],
                 services=[x.id for x in made])
