"""Instances reached over TLS and as an ACL user (enable_ssl, ssl_verify, access_user).

Revision ID: 0003
Revises: 0002
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("instances", sa.Column("access_user", sa.String(256), nullable=True))
    op.add_column("instances", sa.Column("enable_ssl", sa.Boolean, nullable=False, server_default=sa.false()))
    op.add_column("instances", sa.Column("ssl_verify", sa.Boolean, nullable=False, server_default=sa.true()))


def downgrade() -> None:
    with op.batch_alter_table("instances") as batch:
        batch.drop_column("ssl_verify")
        batch.drop_column("enable_ssl")
        batch.drop_column("access_user")
