"""Number pools (owned by a switch), segments (號段) and numbers with a grade."""
from __future__ import annotations

from datetime import datetime, timezone

from sqlalchemy import ForeignKey, Index, Integer, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column, relationship

from resource_mgr.clock import aware
from resource_mgr.db import Base, UTCDateTime
from resource_mgr.inventory.models import Resource, _child_id
from resource_mgr.occupancy.models import Unit


EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)  # "choosable since ever"


def choosable_from(occupancy: str, admin_state: str, preoccupied_until: datetime | None,
                   quarantine_until: datetime | None) -> datetime | None:
    """Number.choosable_from for a unit in this state (the trigger's rule, for rows written in
    bulk): never while occupied or not in service, else once its hold and quarantine are over."""
    if admin_state != "in_service" or occupancy == "occupied":
        return None
    ends = [aware(t) for t in ((preoccupied_until if occupancy == "preoccupied" else None), quarantine_until)
            if t is not None]
    return max([EPOCH, *ends])


class NumberPool(Resource):
    """A pool of numbers on one switch (PSTN or NGN softswitch), with its quarantine period."""

    __tablename__ = "number_pool"
    id: Mapped[str] = _child_id()
    switch_id: Mapped[str | None] = mapped_column(ForeignKey("device.id"))
    area_code: Mapped[str] = mapped_column(String(4))
    quarantine_days: Mapped[int] = mapped_column(Integer, default=90)
    __mapper_args__ = {"polymorphic_identity": "number_pool", "inherit_condition": id == Resource.id}


class NumberSegment(Resource):
    """號段: a contiguous block of local numbers, e.g. 8765 0000–8765 9999; parent is the pool."""

    __tablename__ = "number_segment"
    id: Mapped[str] = _child_id()
    exchange_code: Mapped[str] = mapped_column(String(8))  # leading digits of the local number
    first: Mapped[str] = mapped_column(String(12))
    last: Mapped[str] = mapped_column(String(12))
    __mapper_args__ = {"polymorphic_identity": "number_segment"}


class Number(Base):
    """A telephone number: its occupancy and state are those of its unit (same id). A local
    number is unique in its local network: every area code has its own 8765 0000."""

    __tablename__ = "number"
    __table_args__ = (
        UniqueConstraint("local_network_id", "number"),
        Index("ix_number_pool_grade", "pool_id", "grade_level"),
        Index("ix_number_tail4", "tail4"),
        # number search (resource_mgr/numbers/search.py): tails and letter patterns are prefix
        # ranges on these, within a local network; each index also holds what the choosable
        # test and the order need, so a search and its count read the index alone
        Index("ix_number_search_rnumber", "local_network_id", "rnumber", "choosable_from", "grade_level", "number", "id"),
        Index("ix_number_search_rshape", "local_network_id", "rshape", "choosable_from", "grade_level", "number", "id"),
        Index("ix_number_search_grade", "local_network_id", "grade", "choosable_from", "grade_level", "number", "id"),
        Index("ix_number_search_level", "local_network_id", "grade_level", "choosable_from", "number", "id"),
        # `contains`: LIKE '%123%' through trigrams on PostgreSQL (pg_trgm)
        Index("ix_number_number_trgm", "number", postgresql_using="gin",
              postgresql_ops={"number": "gin_trgm_ops"}).ddl_if(dialect="postgresql"),
    )
    id: Mapped[str] = mapped_column(ForeignKey("unit.id", ondelete="CASCADE"), primary_key=True)
    # the local network of its unit and pool, kept here for the uniqueness above
    local_network_id: Mapped[str] = mapped_column(ForeignKey("local_network.id", ondelete="CASCADE"))
    number: Mapped[str] = mapped_column(String(16))  # local number, e.g. 87650000
    pool_id: Mapped[str] = mapped_column(ForeignKey("number_pool.id", ondelete="CASCADE"))
    segment_id: Mapped[str] = mapped_column(ForeignKey("number_segment.id", ondelete="CASCADE"))
    exchange_code: Mapped[str] = mapped_column(String(8))
    tail4: Mapped[str] = mapped_column(String(4))  # for tail searches
    # derived at creation (numbers.patterns.derived): the number reversed, and its digit shape
    # read from the end (87653344 → AABBCDEF); a tail or pattern is a prefix of these
    rnumber: Mapped[str] = mapped_column(String(16))
    rshape: Mapped[str] = mapped_column(String(16))
    # When an order may choose it (its unit's state, kept here by a database trigger on every
    # update of the unit): NULL never (occupied, locked, faulty, reserved), else the end of its
    # quarantine or pre-occupation, or EPOCH. Choosable now ⇔ choosable_from <= now.
    choosable_from: Mapped[datetime | None] = mapped_column(UTCDateTime)
    grade: Mapped[str] = mapped_column(String(30), default="normal")  # rule name, or normal
    grade_level: Mapped[int] = mapped_column(Integer, default=0)  # 0 normal, higher = more golden
    unit: Mapped[Unit] = relationship(lazy="joined", innerjoin=True)
