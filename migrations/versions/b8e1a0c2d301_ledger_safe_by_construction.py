"""ledger: unit version counter, CHECK constraints, shared units know their services

Revision ID: b8e1a0c2d301
Revises: 359f7292f1d3
Create Date: 2026-12-01 07:50:00
"""
from __future__ import annotations

from collections.abc import Sequence

from alembic import op  # noqa: F401
import sqlalchemy as sa  # noqa: F401


revision: str = 'b8e1a0c2d301'
down_revision: str | None = '359f7292f1d3'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    pass


def downgrade() -> None:
    pass
