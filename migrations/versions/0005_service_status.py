"""service status: which parts of vidgen run where, and when each last said it is alive

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-03 10:00:00

Intake writes its row every ``intake.heartbeatSeconds``; ``/health`` on any host reads it, so a
dead intake thread shows there even when the status page runs on another machine.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import vidgen.db.types

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "service_status",
        sa.Column("id", sa.String(length=36), nullable=False),
        sa.Column("part", sa.String(length=32), nullable=False),
        sa.Column("host", sa.String(length=255), nullable=False),
        sa.Column("startedAt", vidgen.db.types.UTCDateTime(), nullable=False),
        sa.Column("seenAt", vidgen.db.types.UTCDateTime(), nullable=False),
        sa.Column("details", sa.JSON(), nullable=False),
        sa.PrimaryKeyConstraint("id"),
        mysql_charset="utf8mb4",
        mysql_collate="utf8mb4_unicode_ci",
        mysql_engine="InnoDB",
    )
    with op.batch_alter_table("service_status", schema=None) as batch_op:
        batch_op.create_index("ix_service_status_part", ["part"], unique=False)


def downgrade() -> None:
    op.drop_table("service_status")
