"""typed job payloads: a job's request apart from what it produced and what it sent

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-01 11:00:00

Until now ``jobSettings`` held the request and, written into it while the job ran, the final
file names (``outputs``) and the prompt sent to ComfyUI (``submitted``), whose id was also in
``comfyPromptId``. Now ``jobSettings`` is the request alone (an export's size as width and height),
the file names move to ``jobOutputs``, and every prompt is a row of ``comfy_prompt``.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa
from alembic import op

import vidgen.db.types

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None

_TABLE_OPTIONS = {
    "mysql_charset": "utf8mb4",
    "mysql_collate": "utf8mb4_unicode_ci",
    "mysql_engine": "InnoDB",
}


def upgrade() -> None:
    op.create_table(
        "comfy_prompt",
        sa.Column("id", sa.String(length=64), nullable=False),
        sa.Column("jobId", sa.String(length=36), nullable=False),
        sa.Column("step", sa.String(length=64), nullable=False),
        sa.Column("backend", sa.String(length=255), nullable=False),
        sa.Column("graph", sa.JSON(), nullable=False),
        sa.Column("createdAt", vidgen.db.types.UTCDateTime(), nullable=False),
        sa.ForeignKeyConstraint(["jobId"], ["job.id"]),
        sa.PrimaryKeyConstraint("id"),
        **_TABLE_OPTIONS,
    )
    with op.batch_alter_table("comfy_prompt", schema=None) as batch_op:
        batch_op.create_index("ix_comfy_prompt_job", ["jobId", "createdAt"], unique=False)
    with op.batch_alter_table("job", schema=None) as batch_op:
        batch_op.add_column(sa.Column("jobOutputs", sa.JSON(), nullable=True))
    _convert_rows()
    _drop_job_column("comfyPromptId")


def _drop_job_column(name: str) -> None:
    if op.get_bind().dialect.name == "sqlite":
        # Alembic's batch mode would rebuild the table and drop the old one, which SQLite's
        # foreign keys refuse while log lines refer to its jobs; SQLite 3.35+ drops in place.
        op.execute(f'ALTER TABLE job DROP COLUMN "{name}"')
        return
    with op.batch_alter_table("job", schema=None) as batch_op:
        batch_op.drop_column(name)


def _convert_rows() -> None:
    job = sa.table(
        "job",
        sa.column("id", sa.String),
        sa.column("jobType", sa.String),
        sa.column("jobSettings", sa.JSON),
        sa.column("jobOutputs", sa.JSON),
        sa.column("comfyPromptId", sa.String),
        sa.column("comfyBackend", sa.String),
    )
    prompt = sa.table(
        "comfy_prompt",
        sa.column("id", sa.String),
        sa.column("jobId", sa.String),
        sa.column("step", sa.String),
        sa.column("backend", sa.String),
        sa.column("graph", sa.JSON),
        sa.column("createdAt", vidgen.db.types.UTCDateTime()),
    )
    connection = op.get_bind()
    rows = connection.execute(
        sa.select(
            job.c.id, job.c.jobType, job.c.jobSettings, job.c.comfyPromptId, job.c.comfyBackend
        )
    ).all()
    for job_id, job_type, settings, prompt_id, backend in rows:
        request, outputs, sent = _split(job_type, dict(settings or {}))
        connection.execute(
            job.update()
            .where(job.c.id == job_id)
            .values(jobSettings=request, jobOutputs=outputs or None)
        )
        prompt_id = sent.get("promptId") or prompt_id
        backend = sent.get("backend") or backend
        if prompt_id and backend:
            connection.execute(
                prompt.insert().values(
                    id=prompt_id,
                    jobId=job_id,
                    step="clip",
                    backend=backend,
                    graph=sent.get("graph") or {},
                    createdAt=datetime.now(UTC),
                )
            )


def _split(
    job_type: str, settings: dict[str, Any]
) -> tuple[dict[str, Any], dict[str, Any], dict[str, Any]]:
    """(the request, the recorded outputs, the prompt sent) of an old ``jobSettings``.

    Written out here rather than calling vidgen's own code, so the migration keeps doing what
    it did when later versions change that code.
    """
    outputs = dict(settings.pop("outputs", None) or {})
    sent = dict(settings.pop("submitted", None) or {})
    if job_type != "generate":
        width, _, height = str(settings.pop("resolution", "") or "").partition("x")
        if width.isdigit() and height.isdigit():
            settings["width"], settings["height"] = int(width), int(height)
    return settings, outputs, sent


def downgrade() -> None:
    with op.batch_alter_table("job", schema=None) as batch_op:
        batch_op.add_column(sa.Column("comfyPromptId", sa.String(length=64), nullable=True))
    _drop_job_column("jobOutputs")
    with op.batch_alter_table("comfy_prompt", schema=None) as batch_op:
        batch_op.drop_index("ix_comfy_prompt_job")
    op.drop_table("comfy_prompt")
