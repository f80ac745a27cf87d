"""A few standard addresses as a tree, with boxes and coverage, shared by the address tests.

    GZ 天河区天河路88号丽日花园
      1栋  (building: coverage FAT-B1 fibre, FXH-B1 copper)
        1单元 (unit: coverage only by the planned FAT-U1P)   101室, 102室
        2单元 (unit: coverage FAT-U2, overrides the building)  201室, 1201室
      2栋  (no coverage; FAT-NEAR 40 m away, FAT-FAR 160 m away, FXH-FAR 160 m away)
    GZ 越秀区中山路8号  (a street number, no buildings)
    FS 禅城区汾江路88号丽日花园1栋 (another local network; FAT-FS next to it)
"""
from __future__ import annotations

import math
from types import SimpleNamespace

from shapely import Point

from resource_mgr.inventory.models import Address, Coverage, DistributionBox, LocalNetwork
from resource_mgr.addresses.normalise import normalise
from resource_mgr.states import ResourceStatus

LON, LAT = 113.3245, 23.1291
M_LAT = 1 / 111_195.0
M_LON = M_LAT / math.cos(math.radians(LAT))


def at(east_m: float, north_m: float = 0.0, lon: float = LON, lat: float = LAT) -> Point:
    return Point(lon + east_m * M_LON, lat + north_m * M_LAT)


def build(db, networks: dict[str, str] | None = None) -> SimpleNamespace:
    """`networks`: the ids of local networks GZ and FS already made (the live server's)."""
    w = SimpleNamespace()
    with db.unit_of_work() as uow:
        s = uow.session
        if networks:
            gz, fs = s.get(LocalNetwork, networks["GZ"]), s.get(LocalNetwork, networks["FS"])
        else:
            gz = LocalNetwork(code="GZ", name="廣州", area_code="20")
            fs = LocalNetwork(code="FS", name="佛山", area_code="757")
            s.add_all([gz, fs])
            s.flush()
        w.gz, w.fs = gz.id, fs.id

        def addr(text, parent=None, ln=gz.id, point=None, **parts):
            a = Address(name=text, local_network_id=ln, parent_id=parent.id if parent else None,
                        search_key=normalise(text), location=point, **parts)
            s.add(a)
            s.flush()
            return a

        def box(name, medium, point, ln=gz.id, status=ResourceStatus.IN_SERVICE):
            b = DistributionBox(name=name, medium=medium, capacity=8, local_network_id=ln, location=point,
                                status=status)
            s.add(b)
            s.flush()
            return b

        pre = "广东省广州市天河区天河路88号丽日花园"
        common = dict(district="天河区", road="天河路", number="88")
        w.b1 = addr(pre + "1栋", point=at(0), building="1栋", **common)
        w.u1 = addr(pre + "1栋1单元", w.b1, point=at(-7), building="1栋", unit="1单元", **common)
        w.u2 = addr(pre + "1栋2单元", w.b1, point=at(7), building="1栋", unit="2单元", **common)
        w.r101 = addr(pre + "1栋1单元101室", w.u1, point=at(-7), building="1栋", unit="1单元", floor="1",
                      room="101室", **common)
        w.r102 = addr(pre + "1栋1单元102室", w.u1, point=at(-7), building="1栋", unit="1单元", floor="1",
                      room="102室", **common)
        w.r201 = addr(pre + "1栋2单元201室", w.u2, point=at(7), building="1栋", unit="2单元", floor="2",
                      room="201室", **common)
        w.r1201 = addr(pre + "1栋2单元1201室", w.u2, point=at(7), building="1栋", unit="2单元", floor="12",
                       room="1201室", **common)
        w.b2 = addr(pre + "2栋", point=at(0, 500), building="2栋", **common)
        w.b2r = addr(pre + "2栋1单元301室", w.b2, point=at(0, 500), building="2栋", unit="1单元", floor="3",
                     room="301室", **common)
        w.street = addr("广东省广州市越秀区中山路8号", point=at(3000), district="越秀区", road="中山路", number="8")
        w.fs_b1 = addr("广东省佛山市禅城区汾江路88号丽日花园1栋", ln=fs.id, point=at(0, 0, 113.12, 23.02),
                       district="禅城区", road="汾江路", number="88", building="1栋")

        w.fat_b1 = box("FAT-B1", "fibre", at(1))
        w.fxh_b1 = box("FXH-B1", "copper", at(2))
        w.fat_u1p = box("FAT-U1P", "fibre", at(-6), status=ResourceStatus.PLANNED)
        w.fat_u2 = box("FAT-U2", "fibre", at(8))
        w.fat_u2b = box("FAT-U2B", "fibre", at(8, 1))
        w.fat_near = box("FAT-NEAR", "fibre", at(0, 540))
        w.fat_far = box("FAT-FAR", "fibre", at(0, 660))
        w.fxh_far = box("FXH-FAR", "copper", at(0, 660))
        w.fat_retired = box("FAT-OLD", "fibre", at(0, 505), status=ResourceStatus.RETIRED)
        w.fat_fs = box("FAT-FS", "fibre", at(0, 0, 113.12, 23.02), ln=fs.id)
        s.add_all([
            Coverage(box_id=w.fat_b1.id, address_id=w.b1.id, distance_m=1.0),
            Coverage(box_id=w.fxh_b1.id, address_id=w.b1.id, distance_m=2.0),
            Coverage(box_id=w.fat_u1p.id, address_id=w.u1.id, distance_m=1.0),
            Coverage(box_id=w.fat_u2.id, address_id=w.u2.id, distance_m=3.0),
            Coverage(box_id=w.fat_u2b.id, address_id=w.u2.id, distance_m=None),
        ])
        uow.commit()
        for name, value in list(vars(w).items()):
            if hasattr(value, "id"):
                setattr(w, name, value.id)
    return w
