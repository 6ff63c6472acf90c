"""Instance backups (list_backup_records, file_source=backup_record).

Revision ID: 0002
Revises: 0001
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "backups",
        sa.Column("id", sa.String(64), primary_key=True),
        sa.Column("project_id", sa.String(64), nullable=False),
        sa.Column("instance_id", sa.String(64), nullable=False),
        sa.Column("name", sa.String(128), nullable=False),
        sa.Column("remark", sa.String(1024), nullable=False),
        sa.Column("backup_format", sa.String(8), nullable=False),
        sa.Column("backup_type", sa.String(16), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("progress", sa.String(16), nullable=False),
        sa.Column("size", sa.Integer, nullable=False),
        sa.Column("error_code", sa.String(16), nullable=True),
        sa.Column("error_message", sa.Text, nullable=True),
        sa.Column("location", sa.Text, nullable=False),
        sa.Column("created_at", sa.String(32), nullable=False),
        sa.Column("updated_at", sa.String(32), nullable=False),
        sa.Column("execution_at", sa.String(32), nullable=True),
    )
    op.create_index("ix_backups_project_instance", "backups", ["project_id", "instance_id"])


def downgrade() -> None:
    op.drop_index("ix_backups_project_instance", "backups")
    op.drop_table("backups")
