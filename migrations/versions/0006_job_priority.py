"""job priority and waitsForClips: claims by priority, then age, among jobs that can run

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-04 10:00:00

The claim index gains both between the kind and the age, so the next job a worker may take is the
first row of the index walk, however many exports wait for clips still being made. Existing
queued exports start as not waiting: the first claim that reads one whose clips are still being
made marks it.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("job", schema=None) as batch_op:
        batch_op.add_column(sa.Column("priority", sa.Integer(), server_default="0", nullable=False))
        batch_op.add_column(
            sa.Column("waitsForClips", sa.Boolean(), server_default=sa.false(), nullable=False)
        )
        batch_op.drop_index("ix_job_claim")
        batch_op.create_index(
            "ix_job_claim",
            ["jobStatus", "runsOn", "waitsForClips", "priority", "createdAt"],
            unique=False,
        )


def downgrade() -> None:
    with op.batch_alter_table("job", schema=None) as batch_op:
        batch_op.drop_index("ix_job_claim")
        batch_op.create_index("ix_job_claim", ["jobStatus", "runsOn", "createdAt"], unique=False)
        batch_op.drop_column("waitsForClips")
        batch_op.drop_column("priority")
