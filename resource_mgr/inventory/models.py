"""The resource model: space, infrastructure, equipment, outside plant, relations.

Every resource is a row of `resource` (id, kind, name, local network, parent) joined to the table
of its kind, so any resource can be found by its opaque id and names are unique within a scope
(the parent, or the local network for top-level resources). Allocatable units (ports, pairs,
cores, box ports, numbers) live in `occupancy.models.Unit`.
"""
from __future__ import annotations

from datetime import datetime
from typing import Any

from shapely.geometry.base import BaseGeometry
from sqlalchemy import DDL, JSON, Float, ForeignKey, Index, Integer, String, UniqueConstraint, event, text
from sqlalchemy.orm import Mapped, mapped_column, relationship

from resource_mgr.clock import utcnow
from resource_mgr.db import Base, UTCDateTime
from resource_mgr.geo import Geometry
from resource_mgr.ids import new_id
from resource_mgr.states import ResourceStatus

ID = String(26)


def _gist(table: str, column: str) -> Index:
    """A GiST spatial index, created on PostgreSQL only (SQLite answers in process)."""
    return Index(f"ix_{table}_{column}_gist", column, postgresql_using="gist").ddl_if(dialect="postgresql")


class LocalNetwork(Base):
    """本地網: one per city; every resource belongs to exactly one."""

    __tablename__ = "local_network"
    id: Mapped[str] = mapped_column(ID, primary_key=True, default=new_id)
    code: Mapped[str] = mapped_column(String(16), unique=True)  # e.g. "GZ"
    name: Mapped[str] = mapped_column(String(100))
    province: Mapped[str] = mapped_column(String(50), default="")
    area_code: Mapped[str] = mapped_column(String(4))  # e.g. "020", without trunk prefix use "20"
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class NamingRule(Base):
    """資源命名管理: how resources of a kind are named in one local network, e.g.
    "{site}-OLT{seq:02d}" for OLTs or "{device}-{slot}-{port}" for PON ports."""

    __tablename__ = "naming_rule"
    __table_args__ = (UniqueConstraint("local_network_id", "kind"),)
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    local_network_id: Mapped[str] = mapped_column(ForeignKey("local_network.id", ondelete="CASCADE"))
    kind: Mapped[str] = mapped_column(String(40))
    pattern: Mapped[str] = mapped_column(String(200))


class DeviceTemplate(Base):
    """資源模板管理: a device model as data. `spec` holds cards and ports, e.g.
    {"slots": [{"slot": 1, "card_type": "GPON-16", "ports": 16, "port_kind": "pon_port",
    "capacity": 64}, ...]} or {"ratio": 8} for a splitter. Devices copy it when created, so a
    later change to the template does not rewrite them."""

    __tablename__ = "device_template"
    id: Mapped[str] = mapped_column(ID, primary_key=True, default=new_id)
    name: Mapped[str] = mapped_column(String(100), unique=True)
    resource_kind: Mapped[str] = mapped_column(String(40))  # device, cross_box, distribution_box, ...
    device_type: Mapped[str] = mapped_column(String(40), default="")
    vendor: Mapped[str] = mapped_column(String(60), default="")
    spec: Mapped[dict[str, Any]] = mapped_column(JSON)
    version: Mapped[int] = mapped_column(Integer, default=1)


class Resource(Base):
    __tablename__ = "resource"
    __table_args__ = (
        UniqueConstraint("kind", "scope_id", "name"),
        Index("ix_resource_local_network_kind", "local_network_id", "kind"),
        Index("ix_resource_parent_id", "parent_id"),
        Index("ix_resource_name", "name"),
    )
    id: Mapped[str] = mapped_column(ID, primary_key=True, default=new_id)
    kind: Mapped[str] = mapped_column(String(40))
    name: Mapped[str] = mapped_column(String(200))
    local_network_id: Mapped[str] = mapped_column(ForeignKey("local_network.id"))
    parent_id: Mapped[str | None] = mapped_column(ForeignKey("resource.id", ondelete="CASCADE"))
    # Where the name must be unique: the parent, or the local network for top-level resources.
    scope_id: Mapped[str] = mapped_column(ID)
    status: Mapped[ResourceStatus] = mapped_column(String(20), default=ResourceStatus.IN_SERVICE)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)

    local_network: Mapped[LocalNetwork] = relationship(lazy="joined", innerjoin=True)
    parent: Mapped[Resource | None] = relationship(remote_side=[id], back_populates="children")
    children: Mapped[list[Resource]] = relationship(back_populates="parent", passive_deletes=True)

    __mapper_args__ = {"polymorphic_on": "kind", "polymorphic_identity": "resource"}

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.kind} {self.name!r} {self.id}>"


@event.listens_for(Resource, "before_insert", propagate=True)
def _scope(_mapper: Any, _conn: Any, target: Resource) -> None:
    if not target.scope_id:
        target.scope_id = target.parent_id or target.local_network_id


def _child_id() -> Mapped[str]:
    return mapped_column(ForeignKey("resource.id", ondelete="CASCADE"), primary_key=True)


# --- Space (基礎空間資源) -------------------------------------------------------------------

class Area(Resource):
    """Area tree: province → local network → district → street."""

    __tablename__ = "area"
    id: Mapped[str] = _child_id()
    level: Mapped[str] = mapped_column(String(20))  # province, local_network, district, street
    code: Mapped[str] = mapped_column(String(30), default="")
    __mapper_args__ = {"polymorphic_identity": "area"}


class Site(Resource):
    """局站 / 機房: an exchange, machine room or outdoor cabinet site."""

    __tablename__ = "site"
    __table_args__ = (_gist("site", "location"),)
    id: Mapped[str] = _child_id()
    site_type: Mapped[str] = mapped_column(String(30), default="exchange")  # exchange, machine_room, outdoor
    area_id: Mapped[str | None] = mapped_column(ForeignKey("area.id"))
    address_text: Mapped[str] = mapped_column(String(300), default="")
    location: Mapped[BaseGeometry | None] = mapped_column(Geometry("POINT"))
    __mapper_args__ = {"polymorphic_identity": "site"}


class Address(Resource):
    """標準地址: district / road / number / building / unit / floor / room with a point. `name` is
    the full text; `search_key` its normalised form for matching partial input."""

    __tablename__ = "address"
    __table_args__ = (
        _gist("address", "location"), Index("ix_address_search_key", "search_key"),
        # Partial-text search (resource_mgr/addresses/search.py): pg_trgm on PostgreSQL; SQLite
        # keeps the FTS5 trigram table `address_fts` in step by triggers (made by the migration).
        Index("ix_address_search_key_trgm", "search_key", postgresql_using="gin",
              postgresql_ops={"search_key": "gin_trgm_ops"}).ddl_if(dialect="postgresql"),
    )
    id: Mapped[str] = _child_id()
    area_id: Mapped[str | None] = mapped_column(ForeignKey("area.id"))
    district: Mapped[str] = mapped_column(String(50), default="")
    road: Mapped[str] = mapped_column(String(100), default="")
    number: Mapped[str] = mapped_column(String(20), default="")
    building: Mapped[str] = mapped_column(String(50), default="")
    unit: Mapped[str] = mapped_column(String(20), default="")
    floor: Mapped[str] = mapped_column(String(20), default="")
    room: Mapped[str] = mapped_column(String(20), default="")
    search_key: Mapped[str] = mapped_column(String(300))
    location: Mapped[BaseGeometry | None] = mapped_column(Geometry("POINT"))
    __mapper_args__ = {"polymorphic_identity": "address"}

    @property
    def text(self) -> str:
        return self.name

    @property
    def level(self) -> str:
        """Where the address sits in the tree (building ⊃ unit ⊃ floor ⊃ room), from its most
        specific part; "street" for a road number with no building."""
        for level in ("room", "floor", "unit", "building"):
            if getattr(self, level):
                return level
        return "street"


# The search's backend parts, for a schema made by create_all (scripts, tools) to match the one
# the migrations make (c3a0d9e1f401 has the same statements): pg_trgm for the GIN index above;
# on SQLite the FTS5 trigram table kept in step by triggers (resource_mgr/addresses/search.py).
ADDRESS_FTS_DDL = (
    "CREATE VIRTUAL TABLE address_fts USING fts5(search_key, id, tokenize='trigram')",
    "CREATE TRIGGER address_fts_insert AFTER INSERT ON address BEGIN "
    "INSERT INTO address_fts (search_key, id) VALUES (new.search_key, new.id); END",
    "CREATE TRIGGER address_fts_delete AFTER DELETE ON address BEGIN "
    "DELETE FROM address_fts WHERE address_fts MATCH 'id : \"' || old.id || '\"'; END",
    "CREATE TRIGGER address_fts_update AFTER UPDATE OF search_key, id ON address BEGIN "
    "DELETE FROM address_fts WHERE address_fts MATCH 'id : \"' || old.id || '\"'; "
    "INSERT INTO address_fts (search_key, id) VALUES (new.search_key, new.id); END",
)
event.listen(Address.__table__, "before_create",
             DDL("CREATE EXTENSION IF NOT EXISTS pg_trgm").execute_if(dialect="postgresql"))
for _statement in ADDRESS_FTS_DDL:
    event.listen(Address.__table__, "after_create", DDL(_statement).execute_if(dialect="sqlite"))
event.listen(Address.__table__, "after_drop", DDL("DROP TABLE IF EXISTS address_fts").execute_if(dialect="sqlite"))


# --- Infrastructure (基礎設施) ---------------------------------------------------------------

class Manhole(Resource):
    """人井."""

    __tablename__ = "manhole"
    __table_args__ = (_gist("manhole", "location"),)
    id: Mapped[str] = _child_id()
    location: Mapped[BaseGeometry] = mapped_column(Geometry("POINT"))
    __mapper_args__ = {"polymorphic_identity": "manhole"}


class Pole(Resource):
    """電杆."""

    __tablename__ = "pole"
    __table_args__ = (_gist("pole", "location"),)
    id: Mapped[str] = _child_id()
    location: Mapped[BaseGeometry] = mapped_column(Geometry("POINT"))
    __mapper_args__ = {"polymorphic_identity": "pole"}


class Duct(Resource):
    """A duct route (管道), made of segments between manholes, poles or sites."""

    __tablename__ = "duct"
    id: Mapped[str] = _child_id()
    holes: Mapped[int] = mapped_column(Integer, default=4)
    __mapper_args__ = {"polymorphic_identity": "duct"}


class DuctSegment(Resource):
    """管道段: one span of a duct between two points (manhole, pole or site); parent is the duct."""

    __tablename__ = "duct_segment"
    __table_args__ = (_gist("duct_segment", "route"),)
    id: Mapped[str] = _child_id()
    a_end_id: Mapped[str | None] = mapped_column(ForeignKey("resource.id"))
    z_end_id: Mapped[str | None] = mapped_column(ForeignKey("resource.id"))
    length_m: Mapped[float] = mapped_column(Float, default=0.0)
    route: Mapped[BaseGeometry | None] = mapped_column(Geometry("LINESTRING"))
    __mapper_args__ = {"polymorphic_identity": "duct_segment", "inherit_condition": id == Resource.id}


# --- Equipment (專業網絡資源) -----------------------------------------------------------------

DEVICE_TYPES = ("pstn_switch", "ngn_softswitch", "access_gateway", "dslam", "olt", "splitter", "lan_switch", "ont",
                "aggregation_switch", "bras", "core_router")


class Device(Resource):
    """A network element made from a template: switch, softswitch / access gateway, DSLAM, OLT,
    optical splitter, LAN switch, ONT. Its cards are children; its ports are units."""

    __tablename__ = "device"
    __table_args__ = (
        _gist("device", "location"), Index("ix_device_site_id", "site_id"),
        # alarms name a device by its management address (only managed devices have one)
        Index("ix_device_management_ip", "management_ip", postgresql_where=text("management_ip <> ''"),
              sqlite_where=text("management_ip <> ''")),
    )
    id: Mapped[str] = _child_id()
    device_type: Mapped[str] = mapped_column(String(30))
    site_id: Mapped[str | None] = mapped_column(ForeignKey("site.id"))
    template_id: Mapped[str | None] = mapped_column(ForeignKey("device_template.id"))
    vendor: Mapped[str] = mapped_column(String(60), default="")
    model: Mapped[str] = mapped_column(String(60), default="")
    technology: Mapped[str] = mapped_column(String(20), default="")  # GPON, XGS-PON, ADSL2+, VDSL2 ...
    management_ip: Mapped[str] = mapped_column(String(45), default="")
    # Splitters: 1:N ratio and stage (1 = first stage near the OLT/ODF, 2 = in the access terminal).
    split_ratio: Mapped[int | None] = mapped_column(Integer)
    split_stage: Mapped[int | None] = mapped_column(Integer)
    # Where a device stands outside a site (splitter in a cabinet or access terminal).
    location: Mapped[BaseGeometry | None] = mapped_column(Geometry("POINT"))
    __mapper_args__ = {"polymorphic_identity": "device", "inherit_condition": id == Resource.id}


class Card(Resource):
    """A card (board) in a device slot; parent is the device."""

    __tablename__ = "card"
    id: Mapped[str] = _child_id()
    slot: Mapped[int] = mapped_column(Integer)
    card_type: Mapped[str] = mapped_column(String(40))
    __mapper_args__ = {"polymorphic_identity": "card"}


# --- Outside plant (外線) ---------------------------------------------------------------------

class Frame(Resource):
    """總配線架 MDF (copper, line and equipment side) or 光配線架 ODF (fibre); terminals are units."""

    __tablename__ = "frame"
    id: Mapped[str] = _child_id()
    frame_type: Mapped[str] = mapped_column(String(10))  # mdf, odf
    site_id: Mapped[str | None] = mapped_column(ForeignKey("site.id"))
    __mapper_args__ = {"polymorphic_identity": "frame", "inherit_condition": id == Resource.id}


class Cable(Resource):
    """Copper (pairs) or fibre (cores) cable with A and Z ends (frames, cabinets, boxes, splitters
    or sites), a length and a route line; it runs through duct segments (`CableSpan`)."""

    __tablename__ = "cable"
    __table_args__ = (_gist("cable", "route"),)
    id: Mapped[str] = _child_id()
    medium: Mapped[str] = mapped_column(String(10))  # copper, fibre
    stage: Mapped[str] = mapped_column(String(20), default="primary")  # primary/feeder, distribution, drop
    unit_count: Mapped[int] = mapped_column(Integer)  # pairs or cores
    conductor_mm: Mapped[float | None] = mapped_column(Float)  # copper gauge, 0.4–0.9 mm
    length_m: Mapped[float] = mapped_column(Float, default=0.0)
    a_end_id: Mapped[str | None] = mapped_column(ForeignKey("resource.id"))
    z_end_id: Mapped[str | None] = mapped_column(ForeignKey("resource.id"))
    route: Mapped[BaseGeometry | None] = mapped_column(Geometry("LINESTRING"))
    spans: Mapped[list[CableSpan]] = relationship(order_by="CableSpan.seq", cascade="all, delete-orphan")
    __mapper_args__ = {"polymorphic_identity": "cable", "inherit_condition": id == Resource.id}


class CableSpan(Base):
    """A cable passing through one duct segment, in order along the cable."""

    __tablename__ = "cable_span"
    __table_args__ = (Index("ix_cable_span_duct_segment_id", "duct_segment_id"),)
    cable_id: Mapped[str] = mapped_column(ForeignKey("cable.id", ondelete="CASCADE"), primary_key=True)
    seq: Mapped[int] = mapped_column(Integer, primary_key=True)
    duct_segment_id: Mapped[str] = mapped_column(ForeignKey("duct_segment.id"))


class CrossBox(Resource):
    """交接箱: cross-connect cabinet with feeder-side and distribution-side terminals (units)
    joined by jumpers (connections)."""

    __tablename__ = "cross_box"
    __table_args__ = (_gist("cross_box", "location"),)
    id: Mapped[str] = _child_id()
    capacity_pairs: Mapped[int] = mapped_column(Integer)
    site_id: Mapped[str | None] = mapped_column(ForeignKey("site.id"))
    template_id: Mapped[str | None] = mapped_column(ForeignKey("device_template.id"))
    location: Mapped[BaseGeometry | None] = mapped_column(Geometry("POINT"))
    __mapper_args__ = {"polymorphic_identity": "cross_box", "inherit_condition": id == Resource.id}


class DistributionBox(Resource):
    """分線盒 (copper) or 光分纖箱 fibre access terminal: ports (units) serving addresses."""

    __tablename__ = "distribution_box"
    __table_args__ = (_gist("distribution_box", "location"),)
    id: Mapped[str] = _child_id()
    medium: Mapped[str] = mapped_column(String(10))  # copper (分線盒), fibre (光分纖箱)
    capacity: Mapped[int] = mapped_column(Integer)
    template_id: Mapped[str | None] = mapped_column(ForeignKey("device_template.id"))
    location: Mapped[BaseGeometry | None] = mapped_column(Geometry("POINT"))
    __mapper_args__ = {"polymorphic_identity": "distribution_box"}

    @property
    def is_fibre_access_terminal(self) -> bool:
        return self.medium == "fibre"


# --- Relations (資源關係管理) -----------------------------------------------------------------

class Coverage(Base):
    """覆蓋: a box serves an address (building or unit); many to many."""

    __tablename__ = "coverage"
    __table_args__ = (Index("ix_coverage_address_id", "address_id"),)
    box_id: Mapped[str] = mapped_column(ForeignKey("distribution_box.id", ondelete="CASCADE"), primary_key=True)
    address_id: Mapped[str] = mapped_column(ForeignKey("address.id", ondelete="CASCADE"), primary_key=True)
    distance_m: Mapped[float | None] = mapped_column(Float)


class Connection(Base):
    """A fixed link between two terminations (units): port ↔ core, pair ↔ jumper ↔ pair,
    splitter output ↔ core, terminal ↔ pair. `kind` says what joins them."""

    __tablename__ = "connection"
    __table_args__ = (
        UniqueConstraint("a_unit_id", "z_unit_id"),
        Index("ix_connection_z_unit_id", "z_unit_id"),
    )
    id: Mapped[str] = mapped_column(ID, primary_key=True, default=new_id)
    kind: Mapped[str] = mapped_column(String(20))  # jumper, splice, patch, fixed
    a_unit_id: Mapped[str] = mapped_column(ForeignKey("unit.id", ondelete="CASCADE"))
    z_unit_id: Mapped[str] = mapped_column(ForeignKey("unit.id", ondelete="CASCADE"))
    local_network_id: Mapped[str] = mapped_column(ForeignKey("local_network.id"))
    # A jumper in a cross box belongs to that box (for listing and cutovers).
    container_id: Mapped[str | None] = mapped_column(ForeignKey("resource.id", ondelete="CASCADE"))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
