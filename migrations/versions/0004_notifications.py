"""notifications: an outbox of events and their deliveries to each configured target

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-01 12:00:00

An ``event`` row is written in the transaction of the change it is about (a job completed or
failed, a manifest rejected), so it exists exactly when the change does; the notifier makes one
``delivery`` per configured target and tries it until it is delivered or given up.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import vidgen.db.types

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None

_TABLE_OPTIONS = {
    "mysql_charset": "utf8mb4",
    "mysql_collate": "utf8mb4_unicode_ci",
    "mysql_engine": "InnoDB",
}


def upgrade() -> None:
    op.create_table(
        "event",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("projectId", sa.String(length=36), nullable=True),
        sa.Column("jobId", sa.String(length=36), nullable=True),
        sa.Column("dedupKey", sa.String(length=255), nullable=True),
        sa.Column("payload", sa.JSON(), nullable=False),
        sa.Column("fannedOutAt", vidgen.db.types.UTCDateTime(), nullable=True),
        sa.Column("createdAt", vidgen.db.types.UTCDateTime(), nullable=False),
        sa.ForeignKeyConstraint(["jobId"], ["job.id"]),
        sa.ForeignKeyConstraint(["projectId"], ["project.id"]),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("dedupKey"),
        **_TABLE_OPTIONS,
    )
    with op.batch_alter_table("event", schema=None) as batch_op:
        batch_op.create_index("ix_event_fan_out", ["fannedOutAt"], unique=False)
    op.create_table(
        "delivery",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("eventId", sa.Integer(), nullable=False),
        sa.Column("target", sa.String(length=64), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("nextTryAt", vidgen.db.types.UTCDateTime(), nullable=True),
        sa.Column("deliveredAt", vidgen.db.types.UTCDateTime(), nullable=True),
        sa.Column("lastError", sa.Text(), nullable=True),
        sa.Column("createdAt", vidgen.db.types.UTCDateTime(), nullable=False),
        sa.Column("updatedAt", vidgen.db.types.UTCDateTime(), nullable=False),
        sa.ForeignKeyConstraint(["eventId"], ["event.id"]),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("eventId", "target", name="uq_delivery_event_target"),
        **_TABLE_OPTIONS,
    )
    with op.batch_alter_table("delivery", schema=None) as batch_op:
        batch_op.create_index("ix_delivery_due", ["deliveredAt", "nextTryAt"], unique=False)
        batch_op.create_index("ix_delivery_target", ["target", "updatedAt"], unique=False)


def downgrade() -> None:
    op.drop_table("delivery")
    op.drop_table("event")
