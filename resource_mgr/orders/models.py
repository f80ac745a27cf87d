"""The reservation aggregate: one row per order (`order_ref`, unique per local network).

A reservation is what BSS asked for (action, products, address, number, the service it is about)
and what the system holds for it until commit: the units of the designed path (`unit_ids`, in
path order, customer side first), the number's unit, the design itself, and what commit will
release (`release`: the units and number a move, change or removal gives back). Its `id` is the
`reservation_id` written on every unit it holds, every history row and every event.

`version` is a version counter: a write from a stale copy fails (StaleDataError), which the
use cases retry from the start (resource_mgr.orders.retry), so two writers never both win.
"""
from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, ForeignKey, Index, Integer, String, UniqueConstraint, text
from sqlalchemy.orm import Mapped, mapped_column

from resource_mgr.clock import aware, utcnow
from resource_mgr.db import Base, UTCDateTime
from resource_mgr.ids import new_id
from resource_mgr.occupancy.models import StatusType
from resource_mgr.states import ReservationState

ACTIONS = ("new", "move", "change", "remove")


class Reservation(Base):
    __tablename__ = "reservation"
    __table_args__ = (
        UniqueConstraint("local_network_id", "order_ref"),
        # the dispatch work queue and the expiry job
        Index("ix_reservation_state_expires_at", "state", "expires_at"),
        Index("ix_reservation_principal_state", "principal", "state"),
        Index("ix_reservation_service_id", "service_id"),
    )
    id: Mapped[str] = mapped_column(String(26), primary_key=True, default=new_id)
    local_network_id: Mapped[str] = mapped_column(ForeignKey("local_network.id"))
    order_ref: Mapped[str] = mapped_column(String(100))
    action: Mapped[str] = mapped_column(String(10))
    products: Mapped[list[str]] = mapped_column(JSON, default=list)
    technology: Mapped[str | None] = mapped_column(String(10))
    address_id: Mapped[str | None] = mapped_column(ForeignKey("address.id"))
    number: Mapped[str | None] = mapped_column(String(16))
    number_unit_id: Mapped[str | None] = mapped_column(String(26))
    # new: the service made on commit; move / change / remove: the service the order is about
    service_id: Mapped[str | None] = mapped_column(ForeignKey("service.id"))
    bearer_id: Mapped[str | None] = mapped_column(String(26))  # IPTV / VoIP ride on this service
    state: Mapped[ReservationState] = mapped_column(StatusType(ReservationState), default=ReservationState.PREOCCUPIED)
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime)
    # the path's units, customer side first; the number's unit is apart (number_unit_id)
    unit_ids: Mapped[list[str]] = mapped_column(JSON, default=list)
    design: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    # what commit gives back: {"unit_ids": [...], "number": "...", "number_unit_id": "..."}
    release: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    # the request as BSS sent it (normalised): a retry under the same order_ref must match it;
    # None while the reservation only holds a number (POST /numbers/{number}/preoccupy)
    request: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    principal: Mapped[str] = mapped_column(String(100))
    work_order_ref: Mapped[str | None] = mapped_column(String(100))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    committed_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    ended_at: Mapped[datetime | None] = mapped_column(UTCDateTime)  # cancelled or expired
    version: Mapped[int] = mapped_column(Integer, default=1, server_default=text("1"))

    __mapper_args__ = {"version_id_col": version}

    def held_unit_ids(self) -> list[str]:
        """Every unit it holds while pre-occupied: the path, then the number."""
        return [*self.unit_ids, *([self.number_unit_id] if self.number_unit_id else [])]

    def live(self, now: datetime) -> bool:
        return self.state == ReservationState.PREOCCUPIED and aware(self.expires_at) > now
