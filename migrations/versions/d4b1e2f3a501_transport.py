"""transport layer (slot: helper transport)

The transport layer (aggregation switches, BRAS, core routers, uplink ports, trunk cables) needs
no new table: device types, unit kinds and cable stages are text columns checked by the bulk
format and the inventory services. Alarms name a device by its management address, so that
column gets a (partial) index.

Revision ID: d4b1e2f3a501
Revises: c3a0d9e1f406
Create Date: 2026-12-01 14:00:00
"""
from __future__ import annotations

from collections.abc import Sequence

from alembic import op  # noqa: F401
import sqlalchemy as sa  # noqa: F401

from resource_mgr.db import UTCDateTime  # noqa: F401


revision: str = 'd4b1e2f3a501'
down_revision: str | None = 'c3a0d9e1f406'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def _is_postgresql() -> bool:
    return op.get_bind().dialect.name == "postgresql"


def upgrade() -> None:
    op.create_index("ix_device_management_ip", "device", ["management_ip"],
                    postgresql_where=sa.text("management_ip <> ''"), sqlite_where=sa.text("management_ip <> ''"))


def downgrade() -> None:
    op.drop_index("ix_device_management_ip", table_name="device")
