"""jobs: leases, heartbeats and the scheduler lease

A job records who runs it and until when (lease), how often it was claimed, when it was last
sent, and the local networks it touches; `state` is limited to the JobState values. One new
table: scheduler_lease (which process runs the periodic sweep and reaper).

Revision ID: b8e1a0c2d303
Revises: b8e1a0c2d302
Create Date: 2026-12-01 07:50:00
"""
from __future__ import annotations

from collections.abc import Sequence

from alembic import op  # noqa: F401
import sqlalchemy as sa  # noqa: F401

from resource_mgr.db import UTCDateTime


revision: str = 'b8e1a0c2d303'
down_revision: str | None = 'b8e1a0c2d302'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


JOB_STATES = ("queued", "running", "succeeded", "failed")


def upgrade() -> None:
    with op.batch_alter_table("job") as batch:
        batch.add_column(sa.Column("local_network_ids", sa.JSON(), nullable=True))
        batch.add_column(sa.Column("sent_at", UTCDateTime(), nullable=True))
        batch.add_column(sa.Column("attempts", sa.Integer(), nullable=False, server_default="0"))
        batch.add_column(sa.Column("lease_owner", sa.String(length=100), nullable=True))
        batch.add_column(sa.Column("lease_expires_at", UTCDateTime(), nullable=True))
        batch.create_index("ix_job_state_lease_expires_at", ["state", "lease_expires_at"], unique=False)
        batch.create_index("ix_job_kind_created_at", ["kind", "created_at"], unique=False)
        batch.create_check_constraint(op.f("ck_job_job_state"), sa.column("state").in_(JOB_STATES))
    # a job of one local network is scoped to it (GET /jobs/{id} compares this with the token's)
    op.execute("UPDATE job SET local_network_ids = json_build_array(local_network_id) "
               "WHERE local_network_id IS NOT NULL" if op.get_bind().dialect.name == "postgresql" else
               "UPDATE job SET local_network_ids = json_array(local_network_id) WHERE local_network_id IS NOT NULL")
    with op.batch_alter_table("job") as batch:
        batch.alter_column("attempts", server_default=None)
    op.create_table(
        "scheduler_lease",
        sa.Column("name", sa.String(length=40), nullable=False),
        sa.Column("owner", sa.String(length=100), nullable=False),
        sa.Column("expires_at", UTCDateTime(), nullable=False),
        sa.Column("acquired_at", UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("name", name=op.f("pk_scheduler_lease")),
    )


def downgrade() -> None:
    op.drop_table("scheduler_lease")
    with op.batch_alter_table("job") as batch:
        batch.drop_constraint(op.f("ck_job_job_state"), type_="check")
        batch.drop_index("ix_job_kind_created_at")
        batch.drop_index("ix_job_state_lease_expires_at")
        batch.drop_column("lease_expires_at")
        batch.drop_column("lease_owner")
        batch.drop_column("attempts")
        batch.drop_column("sent_at")
        batch.drop_column("local_network_ids")
