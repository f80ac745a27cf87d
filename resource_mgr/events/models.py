"""The outbox: events, the webhook subscriptions they go to, and one delivery row per
(event, subscription) that records the attempts."""
from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, Enum, ForeignKey, Index, Integer, String
from sqlalchemy.orm import Mapped, mapped_column

from resource_mgr.clock import utcnow
from resource_mgr.db import Base, UTCDateTime
from resource_mgr.ids import new_id
from resource_mgr.states import DeliveryState

# The contract's event types (API.md, Events): a subscription may filter on them.
EVENT_TYPES: tuple[str, ...] = (
    "reservation.preoccupied", "reservation.redesigned", "reservation.committed", "reservation.cancelled",
    "reservation.expired", "service.created", "service.changed", "service.removed", "cutover.locked",
    "cutover.applied", "cutover.rolled_back", "cutover.cancelled", "fault.opened", "fault.cleared",
)

DELIVERY_STATE = Enum(DeliveryState, name="delivery_state", native_enum=False, create_constraint=True, length=12,
                      values_callable=lambda states: [s.value for s in states], validate_strings=True)


class Event(Base):
    """One thing that happened, as BSS and IOM are told it. Written in the transaction of the
    change it reports, so an event exists exactly when its change was committed."""
    __tablename__ = "event"
    __table_args__ = (Index("ix_event_order_ref", "order_ref"),)
    id: Mapped[str] = mapped_column(String(26), primary_key=True, default=new_id)
    type: Mapped[str] = mapped_column(String(40))
    occurred_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    local_network_id: Mapped[str] = mapped_column(ForeignKey("local_network.id"))
    order_ref: Mapped[str | None] = mapped_column(String(100))
    reservation_id: Mapped[str | None] = mapped_column(String(64))
    service_id: Mapped[str | None] = mapped_column(String(64))
    cutover_id: Mapped[str | None] = mapped_column(String(64))
    fault_id: Mapped[str | None] = mapped_column(String(64))
    data: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class Subscription(Base):
    """A webhook: where to POST events, which types (None: all), signed with `secret` if set.
    Scoped to the local networks of its creator when it was made (None: every one)."""
    __tablename__ = "event_subscription"
    id: Mapped[str] = mapped_column(String(26), primary_key=True, default=new_id)
    url: Mapped[str] = mapped_column(String(2000))
    events: Mapped[list[str] | None] = mapped_column(JSON)
    # Kept as given: the HMAC needs it. Never shown by the API (only whether there is one).
    secret: Mapped[str | None] = mapped_column(String(256))
    local_network_ids: Mapped[list[str] | None] = mapped_column(JSON)
    created_by: Mapped[str] = mapped_column(String(100))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)

    def wants(self, event_type: str, local_network_id: str) -> bool:
        return (self.events is None or event_type in self.events) and \
            (self.local_network_ids is None or local_network_id in self.local_network_ids)


class Delivery(Base):
    """One event to one subscription. The integer id is the order events were written in: an
    event is not sent while an earlier delivery of the same order_ref to the same subscription is
    still pending. A runner claims a row with a lease (owner, expiry) before posting it."""
    __tablename__ = "event_delivery"
    __table_args__ = (
        Index("ix_event_delivery_state_next_attempt_at", "state", "next_attempt_at"),
        Index("ix_event_delivery_subscription_id_order_ref_state", "subscription_id", "order_ref", "state"),
        Index("ix_event_delivery_subscription_id_state", "subscription_id", "state"),
    )
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    event_id: Mapped[str] = mapped_column(ForeignKey("event.id"))
    subscription_id: Mapped[str] = mapped_column(ForeignKey("event_subscription.id", ondelete="CASCADE"))
    order_ref: Mapped[str | None] = mapped_column(String(100))  # the event's, for the ordering rule
    state: Mapped[DeliveryState] = mapped_column(DELIVERY_STATE, default=DeliveryState.PENDING)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    next_attempt_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    last_attempt_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    last_status: Mapped[int | None] = mapped_column(Integer)  # the HTTP status of the last answer
    last_error: Mapped[str | None] = mapped_column(String(300))
    delivered_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    lease_owner: Mapped[str | None] = mapped_column(String(100))
    lease_expires_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
