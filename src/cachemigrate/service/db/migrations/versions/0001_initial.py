"""Initial schema: credentials, instances, tasks, logs, checkpoints, jobs.

Revision ID: 0001
Revises:
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "credentials",
        sa.Column("access_key", sa.String(64), primary_key=True),
        sa.Column("project_id", sa.String(64), nullable=False, index=True),
        sa.Column("secret_key_enc", sa.Text, nullable=False),
        sa.Column("description", sa.String(255), nullable=False),
        sa.Column("created_at", sa.String(32), nullable=False),
    )
    op.create_table(
        "instances",
        sa.Column("id", sa.String(64), primary_key=True),
        sa.Column("project_id", sa.String(64), nullable=False, index=True),
        sa.Column("name", sa.String(64), nullable=False),
        sa.Column("addrs", sa.String(1024), nullable=False),
        sa.Column("password_enc", sa.Text, nullable=True),
        sa.Column("description", sa.String(1024), nullable=False),
        sa.Column("engine_version", sa.String(32), nullable=False),
        sa.Column("created_at", sa.String(32), nullable=False),
    )
    op.create_table(
        "tasks",
        sa.Column("id", sa.String(64), primary_key=True),
        sa.Column("project_id", sa.String(64), nullable=False),
        sa.Column("name", sa.String(64), nullable=False),
        sa.Column("description", sa.String(1024), nullable=False),
        sa.Column("migration_type", sa.String(32), nullable=False),
        sa.Column("migration_method", sa.String(32), nullable=True),
        sa.Column("status", sa.String(32), nullable=False),
        sa.Column("task_status", sa.String(32), nullable=True),
        sa.Column("resume_mode", sa.String(16), nullable=False),
        sa.Column("bandwidth_limit_mb", sa.String(16), nullable=True),
        sa.Column("network_type", sa.String(16), nullable=True),
        sa.Column("backup_files", sa.JSON, nullable=True),
        sa.Column("source", sa.JSON, nullable=True),
        sa.Column("target", sa.JSON, nullable=True),
        sa.Column("source_password_enc", sa.Text, nullable=True),
        sa.Column("target_password_enc", sa.Text, nullable=True),
        sa.Column("tenant_vpc_id", sa.String(64), nullable=True),
        sa.Column("tenant_subnet_id", sa.String(64), nullable=True),
        sa.Column("tenant_security_group_id", sa.String(64), nullable=True),
        sa.Column("error_message", sa.Text, nullable=True),
        sa.Column("stats", sa.JSON, nullable=True),
        sa.Column("created_at", sa.String(32), nullable=False),
        sa.Column("updated_at", sa.String(32), nullable=False),
        sa.Column("released_at", sa.String(32), nullable=True),
        sa.Column("deleted", sa.Boolean, nullable=False),
    )
    op.create_index("ix_tasks_project_deleted", "tasks", ["project_id", "deleted"])
    op.create_table(
        "task_logs",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("task_id", sa.String(64), sa.ForeignKey("tasks.id", ondelete="CASCADE"), nullable=False),
        sa.Column("created_at", sa.String(32), nullable=False),
        sa.Column("level", sa.String(8), nullable=False),
        sa.Column("code", sa.String(64), nullable=False),
        sa.Column("message", sa.Text, nullable=False),
        sa.Column("keyword", sa.JSON, nullable=False),
    )
    op.create_index("ix_task_logs_task_level", "task_logs", ["task_id", "level"])
    op.create_table(
        "task_checkpoints",
        sa.Column("task_id", sa.String(64), sa.ForeignKey("tasks.id", ondelete="CASCADE"), primary_key=True),
        sa.Column("data", sa.Text, nullable=False),
        sa.Column("updated_at", sa.String(32), nullable=False),
    )
    op.create_table(
        "jobs",
        sa.Column("id", sa.String(64), primary_key=True),
        sa.Column("project_id", sa.String(64), nullable=False, index=True),
        sa.Column("job_type", sa.String(64), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("begin_time", sa.String(20), nullable=False),
        sa.Column("end_time", sa.String(20), nullable=True),
        sa.Column("fail_reason", sa.Text, nullable=True),
    )


def downgrade() -> None:
    for table in ("jobs", "task_checkpoints", "task_logs", "tasks", "instances", "credentials"):
        op.drop_table(table)
