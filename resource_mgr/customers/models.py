"""Customers (with a VIP / major-account grade) and the services they hold."""
from __future__ import annotations

from datetime import datetime

from sqlalchemy import ForeignKey, Index, Integer, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column, relationship

from resource_mgr.clock import utcnow
from resource_mgr.db import Base, UTCDateTime
from resource_mgr.ids import new_id
from resource_mgr.states import CustomerGrade, ServiceState


class Customer(Base):
    __tablename__ = "customer"
    __table_args__ = (UniqueConstraint("local_network_id", "external_ref"),)
    id: Mapped[str] = mapped_column(String(26), primary_key=True, default=new_id)
    local_network_id: Mapped[str] = mapped_column(ForeignKey("local_network.id"))
    external_ref: Mapped[str] = mapped_column(String(64))  # the BSS customer id
    name: Mapped[str] = mapped_column(String(200))
    grade: Mapped[CustomerGrade] = mapped_column(String(20), default=CustomerGrade.NORMAL)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)

    @property
    def vip(self) -> bool:
        return self.grade != CustomerGrade.NORMAL


class Service(Base):
    """A service instance (POTS, FTTH broadband, ...) at an address, with its number and the
    units it occupies, in order from the customer side to the exchange or OLT. IPTV and VoIP
    over broadband ride on a bearer: the line service whose path they share (they occupy no
    unit of their own, but a fault on that path takes them down too)."""

    __tablename__ = "service"
    __table_args__ = (
        Index("ix_service_local_network_state", "local_network_id", "state"),
        Index("ix_service_customer_id", "customer_id"),
        Index("ix_service_address_id", "address_id"),
        Index("ix_service_number", "number"),
        Index("ix_service_bearer_id", "bearer_id"),
    )
    id: Mapped[str] = mapped_column(String(26), primary_key=True, default=new_id)
    local_network_id: Mapped[str] = mapped_column(ForeignKey("local_network.id"))
    product: Mapped[str] = mapped_column(String(30))
    technology: Mapped[str] = mapped_column(String(10))
    state: Mapped[ServiceState] = mapped_column(String(12), default=ServiceState.ACTIVE)
    customer_id: Mapped[str | None] = mapped_column(ForeignKey("customer.id"))
    address_id: Mapped[str | None] = mapped_column(ForeignKey("address.id"))
    number: Mapped[str | None] = mapped_column(String(16))
    bearer_id: Mapped[str | None] = mapped_column(ForeignKey("service.id"))
    order_ref: Mapped[str | None] = mapped_column(String(100))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    removed_at: Mapped[datetime | None] = mapped_column(UTCDateTime)

    customer: Mapped[Customer | None] = relationship(lazy="joined")
    path: Mapped[list[ServiceUnit]] = relationship(order_by="ServiceUnit.seq", cascade="all, delete-orphan")


class ServiceUnit(Base):
    """One hop of a service's occupied path."""

    __tablename__ = "service_unit"
    __table_args__ = (Index("ix_service_unit_unit_id", "unit_id"),)
    service_id: Mapped[str] = mapped_column(ForeignKey("service.id", ondelete="CASCADE"), primary_key=True)
    seq: Mapped[int] = mapped_column(Integer, primary_key=True)
    unit_id: Mapped[str] = mapped_column(ForeignKey("unit.id"))
