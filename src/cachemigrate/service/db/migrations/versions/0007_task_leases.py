"""Distributed mode: a task's owner, lease and fencing generation, the requests to its owner, and
the workers' table.

Revision ID: 0007
Revises: 0006
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("tasks", sa.Column("run_by", sa.String(128), nullable=True))
    op.add_column("tasks", sa.Column("lease_expires_at", sa.DateTime(timezone=True), nullable=True))
    op.add_column(
        "tasks", sa.Column("lease_generation", sa.Integer(), nullable=False, server_default=sa.text("0"))
    )
    op.add_column("tasks", sa.Column("control_request", sa.String(16), nullable=True))
    op.add_column("tasks", sa.Column("switch_request", sa.JSON(), nullable=True))
    op.create_table(
        "workers",
        sa.Column("id", sa.String(128), primary_key=True),
        sa.Column("started_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("heartbeat_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("slots", sa.Integer(), nullable=False),
        sa.Column("units", sa.JSON(), nullable=False),
        sa.Column("keys_moved", sa.BigInteger(), nullable=False),
        sa.Column("bytes_moved", sa.BigInteger(), nullable=False),
        sa.Column("stopped", sa.Boolean(), nullable=False),
    )


def downgrade() -> None:
    op.drop_table("workers")
    with op.batch_alter_table("tasks") as batch:
        for column in ("switch_request", "control_request", "lease_generation", "lease_expires_at", "run_by"):
            batch.drop_column(column)
