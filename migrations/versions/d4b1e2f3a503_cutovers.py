"""cutovers (slot: helper cutover)

Empty slot: filled by its feature, deleted if it needs no schema.

Revision ID: d4b1e2f3a503
Revises: d4b1e2f3a502
Create Date: 2026-12-01 14:00:00
"""
from __future__ import annotations

from collections.abc import Sequence

from alembic import op  # noqa: F401
import sqlalchemy as sa  # noqa: F401

from resource_mgr.db import UTCDateTime  # noqa: F401


revision: str = 'd4b1e2f3a503'
down_revision: str | None = 'd4b1e2f3a502'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def _is_postgresql() -> bool:
    return op.get_bind().dialect.name == "postgresql"


def upgrade() -> None:
    pass


def downgrade() -> None:
    pass
