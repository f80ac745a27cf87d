"""ledger: unit version counter, CHECK constraints, shared units know their services

Revision ID: b8e1a0c2d301
Revises: 359f7292f1d3
Create Date: 2026-12-01 07:50:00

A version counter on units (a write from a stale copy fails), CHECK constraints that keep a
unit's columns consistent, and `shared_use`: one row per service on a shared unit, so that
releasing a service that is not there is refused. Existing shared units get their rows from the
live services' paths and `used` is set to their number. Rows that break a constraint stop the
upgrade with what to fix (nothing is changed silently).

The constraints are written out here, not imported: a revision keeps the schema of its day.
"""
from __future__ import annotations

from collections.abc import Sequence

from alembic import op
import sqlalchemy as sa


revision: str = 'b8e1a0c2d301'
down_revision: str | None = '359f7292f1d3'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


_EXCLUSIVE_HOLDER = (
    "capacity > 1 OR (used = 0 AND ("
    "(occupancy = 'free' AND reservation_id IS NULL AND preoccupied_until IS NULL AND service_id IS NULL)"
    " OR (occupancy = 'preoccupied' AND reservation_id IS NOT NULL AND preoccupied_until IS NOT NULL"
    " AND service_id IS NULL)"
    " OR (occupancy = 'occupied' AND reservation_id IS NULL AND preoccupied_until IS NULL"
    " AND service_id IS NOT NULL)))"
)
_SHARED_HOLDER = (
    "capacity = 1 OR (reservation_id IS NULL AND preoccupied_until IS NULL AND service_id IS NULL AND ("
    "(used > 0 AND occupancy = 'occupied') OR (used = 0 AND occupancy IN ('free', 'preoccupied'))))"
)
CHECKS = {
    "capacity_positive": "capacity >= 1",
    "used_within_capacity": "used >= 0 AND used <= capacity",
    "occupancy_known": "occupancy IN ('free', 'preoccupied', 'occupied')",
    "admin_state_known": "admin_state IN ('in_service', 'locked', 'faulty', 'reserved')",
    "locked_by_cutover": "(admin_state = 'locked') = (locked_by IS NOT NULL)",
    "exclusive_holder": _EXCLUSIVE_HOLDER,
    "shared_holder": _SHARED_HOLDER,
}
PARTIAL_INDEXES = (("ix_unit_reservation_id", "reservation_id"), ("ix_unit_locked_by", "locked_by"))


def _sqlite() -> bool:
    return op.get_bind().dialect.name == "sqlite"


def _restore_partial_indexes() -> None:
    """SQLite's table rebuild does not keep index predicates: make them again."""
    for name, column in PARTIAL_INDEXES:
        where = sa.text(f"{column} IS NOT NULL")
        op.execute(f"DROP INDEX IF EXISTS {name}")
        op.create_index(name, "unit", [column], unique=False, postgresql_where=where, sqlite_where=where)


def upgrade() -> None:
    op.create_table(
        "shared_use",
        sa.Column("unit_id", sa.String(length=26), nullable=False),
        sa.Column("service_id", sa.String(length=26), nullable=False),
        sa.Column("since", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["unit_id"], ["unit.id"], name=op.f("fk_shared_use_unit_id_unit"), ondelete="CASCADE"),
        sa.ForeignKeyConstraint(["service_id"], ["service.id"], name=op.f("fk_shared_use_service_id_service")),
        sa.PrimaryKeyConstraint("unit_id", "service_id", name=op.f("pk_shared_use")),
    )
    op.create_index("ix_shared_use_service_id", "shared_use", ["service_id"], unique=False)
    now = "CURRENT_TIMESTAMP"
    op.execute(f"""
        INSERT INTO shared_use (unit_id, service_id, since)
        SELECT DISTINCT su.unit_id, su.service_id, {now}
        FROM service_unit su JOIN service s ON s.id = su.service_id JOIN unit u ON u.id = su.unit_id
        WHERE u.capacity > 1 AND s.state IN ('active', 'suspended')""")
    op.execute("""
        UPDATE unit SET used = (SELECT count(*) FROM shared_use WHERE shared_use.unit_id = unit.id)
        WHERE capacity > 1""")
    op.execute("""
        UPDATE unit SET occupancy = CASE WHEN used > 0 THEN 'occupied'
                                         WHEN occupancy = 'occupied' THEN 'free' ELSE occupancy END
        WHERE capacity > 1""")

    bind = op.get_bind()
    for name, check in CHECKS.items():
        bad = bind.execute(sa.text(f"SELECT count(*) FROM unit WHERE NOT ({check})")).scalar()
        if bad:
            raise RuntimeError(f"{bad} unit row(s) break the rule {name!r} ({check}): correct them, then upgrade")

    if _sqlite():
        with op.batch_alter_table("unit", recreate="always") as batch:
            batch.add_column(sa.Column("version", sa.Integer(), server_default=sa.text("1"), nullable=False))
            for name, check in CHECKS.items():
                batch.create_check_constraint(op.f(f"ck_unit_{name}"), check)
        _restore_partial_indexes()
    else:
        op.add_column("unit", sa.Column("version", sa.Integer(), server_default=sa.text("1"), nullable=False))
        for name, check in CHECKS.items():
            op.create_check_constraint(op.f(f"ck_unit_{name}"), "unit", check)


def downgrade() -> None:
    if _sqlite():
        with op.batch_alter_table("unit", recreate="always") as batch:
            for name in CHECKS:
                batch.drop_constraint(op.f(f"ck_unit_{name}"), type_="check")
            batch.drop_column("version")
        _restore_partial_indexes()
    else:
        for name in CHECKS:
            op.drop_constraint(op.f(f"ck_unit_{name}"), "unit", type_="check")
        op.drop_column("unit", "version")
    op.drop_index("ix_shared_use_service_id", table_name="shared_use")
    op.drop_table("shared_use")
