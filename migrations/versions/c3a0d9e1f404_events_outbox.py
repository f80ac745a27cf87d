"""events outbox

Three tables: event (the outbox, written in the transaction of the change it reports),
event_subscription (webhooks) and event_delivery (one row per event and subscription: state,
attempts, next attempt, last answer, the lease of the runner posting it). The delivery id is an
integer in insertion order: events of one order_ref go out in that order.

Revision ID: c3a0d9e1f404
Revises: c3a0d9e1f403
Create Date: 2026-12-01 10:40:00
"""
from __future__ import annotations

from collections.abc import Sequence

from alembic import op  # noqa: F401
import sqlalchemy as sa  # noqa: F401

from resource_mgr.db import UTCDateTime


revision: str = 'c3a0d9e1f404'
down_revision: str | None = 'c3a0d9e1f403'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def _is_postgresql() -> bool:
    return op.get_bind().dialect.name == "postgresql"


DELIVERY_STATES = ("pending", "delivered", "failed")


def upgrade() -> None:
    op.create_table(
        "event",
        sa.Column("id", sa.String(length=26), nullable=False),
        sa.Column("type", sa.String(length=40), nullable=False),
        sa.Column("occurred_at", UTCDateTime(), nullable=False),
        sa.Column("local_network_id", sa.String(length=26), nullable=False),
        sa.Column("order_ref", sa.String(length=100), nullable=True),
        sa.Column("reservation_id", sa.String(length=64), nullable=True),
        sa.Column("service_id", sa.String(length=64), nullable=True),
        sa.Column("cutover_id", sa.String(length=64), nullable=True),
        sa.Column("fault_id", sa.String(length=64), nullable=True),
        sa.Column("data", sa.JSON(), nullable=False),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.ForeignKeyConstraint(["local_network_id"], ["local_network.id"],
                                name=op.f("fk_event_local_network_id_local_network")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_event")),
    )
    op.create_index("ix_event_order_ref", "event", ["order_ref"], unique=False)
    op.create_table(
        "event_subscription",
        sa.Column("id", sa.String(length=26), nullable=False),
        sa.Column("url", sa.String(length=2000), nullable=False),
        sa.Column("events", sa.JSON(), nullable=True),
        sa.Column("secret", sa.String(length=256), nullable=True),
        sa.Column("local_network_ids", sa.JSON(), nullable=True),
        sa.Column("created_by", sa.String(length=100), nullable=False),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_event_subscription")),
    )
    op.create_table(
        "event_delivery",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("event_id", sa.String(length=26), nullable=False),
        sa.Column("subscription_id", sa.String(length=26), nullable=False),
        sa.Column("order_ref", sa.String(length=100), nullable=True),
        sa.Column("state", sa.Enum(*DELIVERY_STATES, name="delivery_state", native_enum=False,
                                   create_constraint=True, length=12), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("next_attempt_at", UTCDateTime(), nullable=False),
        sa.Column("last_attempt_at", UTCDateTime(), nullable=True),
        sa.Column("last_status", sa.Integer(), nullable=True),
        sa.Column("last_error", sa.String(length=300), nullable=True),
        sa.Column("delivered_at", UTCDateTime(), nullable=True),
        sa.Column("lease_owner", sa.String(length=100), nullable=True),
        sa.Column("lease_expires_at", UTCDateTime(), nullable=True),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.ForeignKeyConstraint(["event_id"], ["event.id"], name=op.f("fk_event_delivery_event_id_event")),
        sa.ForeignKeyConstraint(["subscription_id"], ["event_subscription.id"], ondelete="CASCADE",
                                name=op.f("fk_event_delivery_subscription_id_event_subscription")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_event_delivery")),
    )
    op.create_index("ix_event_delivery_state_next_attempt_at", "event_delivery", ["state", "next_attempt_at"],
                    unique=False)
    op.create_index("ix_event_delivery_subscription_id_order_ref_state", "event_delivery",
                    ["subscription_id", "order_ref", "state"], unique=False)
    op.create_index("ix_event_delivery_subscription_id_state", "event_delivery", ["subscription_id", "state"],
                    unique=False)


def downgrade() -> None:
    op.drop_index("ix_event_delivery_subscription_id_state", table_name="event_delivery")
    op.drop_index("ix_event_delivery_subscription_id_order_ref_state", table_name="event_delivery")
    op.drop_index("ix_event_delivery_state_next_attempt_at", table_name="event_delivery")
    op.drop_table("event_delivery")
    op.drop_table("event_subscription")
    op.drop_index("ix_event_order_ref", table_name="event")
    op.drop_table("event")
