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
    # Plain ALTERs, not batch mode: a rebuild of job would drop a table other rows point at.
    op.add_column("job", sa.Column("priority", sa.Integer(), server_default="0", nullable=False))
    op.add_column(
        "job", sa.Column("waitsForClips", sa.Boolean(), server_default=sa.false(), nullable=False)
    )
    op.drop_index("ix_job_claim", table_name="job")
    op.create_index(
        "ix_job_claim", "job", ["jobStatus", "runsOn", "waitsForClips", "priority", "createdAt"]
    )


def downgrade() -> None:
    op.drop_index("ix_job_claim", table_name="job")
    op.create_index("ix_job_claim", "job", ["jobStatus", "runsOn", "createdAt"])
    for name in ("waitsForClips", "priority"):
        if op.get_bind().dialect.name == "sqlite":
            op.execute(f'ALTER TABLE job DROP COLUMN "{name}"')  # in place, as in 0003
        else:
            op.drop_column("job", name)
