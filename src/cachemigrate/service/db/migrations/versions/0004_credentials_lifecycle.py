"""Credentials that can be revoked and rotated: revoked_at, replaced_by, last_used_at.

Revision ID: 0004
Revises: 0003
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("credentials", sa.Column("revoked_at", sa.String(32), nullable=True))
    op.add_column("credentials", sa.Column("replaced_by", sa.String(64), nullable=True))
    op.add_column("credentials", sa.Column("last_used_at", sa.String(32), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("credentials") as batch:
        batch.drop_column("last_used_at")
        batch.drop_column("replaced_by")
        batch.drop_column("revoked_at")
