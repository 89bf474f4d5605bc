"""job list index: the status page lists jobs newest first

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-26 13:40:00

Without it MariaDB reads and sorts every job (plus a temporary table for the project join) for
each page of the job list; with it, a page is a short backward index scan (docs/benchmarks.md,
"Status page").
"""

from __future__ import annotations

from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("job", schema=None) as batch_op:
        batch_op.create_index("ix_job_created", ["createdAt", "id"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("job", schema=None) as batch_op:
        batch_op.drop_index("ix_job_created")
