"""initial schema

Revision ID: 0001
Revises:
Create Date: 2026-11-26 13:02:58.659670
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import vidgen.db.types

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "name_counter",
        sa.Column("projectName", sa.String(length=64), nullable=False),
        sa.Column("fileType", sa.String(length=16), nullable=False),
        sa.Column("lastIndex", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("projectName", "fileType"),
        mysql_charset="utf8mb4",
        mysql_collate="utf8mb4_unicode_ci",
        mysql_engine="InnoDB",
    )
    op.create_table(
        "project",
        sa.Column("id", sa.String(length=36), nullable=False),
        sa.Column("projectName", sa.String(length=64), nullable=False),
        sa.Column("displayName", sa.String(length=200), nullable=False),
        sa.Column("description", sa.Text(), nullable=False),
        sa.Column("resolution", sa.String(length=16), nullable=False),
        sa.Column("frameRate", sa.Integer(), nullable=False),
        sa.Column("projectStatus", sa.String(length=16), nullable=False),
        sa.Column("outboxPath", sa.String(length=1024), nullable=False),
        sa.Column("createdAt", vidgen.db.types.UTCDateTime(), nullable=False),
        sa.Column("updatedAt", vidgen.db.types.UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("projectName"),
        mysql_charset="utf8mb4",
        mysql_collate="utf8mb4_unicode_ci",
        mysql_engine="InnoDB",
    )
    op.create_table(
        "clip",
        sa.Column("id", sa.String(length=36), nullable=False),
        sa.Column("projectId", sa.String(length=36), nullable=False),
        sa.Column("clipName", sa.String(length=200), nullable=False),
        sa.Column("orderIndex", sa.Integer(), nullable=False),
        sa.Column("generationMode", sa.String(length=16), nullable=False),
        sa.Column("prompt", sa.Text(), nullable=False),
        sa.Column("negativePrompt", sa.Text(), nullable=False),
        sa.Column("seedValue", vidgen.db.types.UnsignedBigInt(), nullable=False),
        sa.Column("stepsCount", sa.Integer(), nullable=False),
        sa.Column("cfgScale", sa.Float(), nullable=False),
        sa.Column("frameCount", sa.Integer(), nullable=False),
        sa.Column("width", sa.Integer(), nullable=False),
        sa.Column("height", sa.Integer(), nullable=False),
        sa.Column("checkpoint", sa.String(length=255), nullable=False),
        sa.Column("motionModule", sa.String(length=255), nullable=False),
        sa.Column("referenceImage", sa.String(length=1024), nullable=True),
        sa.Column("ipAdapterWeight", sa.Float(), nullable=True),
        sa.Column("settingsHash", sa.String(length=64), nullable=False),
        sa.Column("filePath", sa.String(length=1024), nullable=True),
        sa.Column("fileName", sa.String(length=255), nullable=True),
        sa.Column("thumbnailPath", sa.String(length=1024), nullable=True),
        sa.Column("thumbnailName", sa.String(length=255), nullable=True),
        sa.Column("durationSec", sa.Float(), nullable=True),
        sa.Column("clipStatus", sa.String(length=16), nullable=False),
        sa.Column("errorMessage", sa.Text(), nullable=True),
        sa.Column("workflowJson", sa.JSON(), nullable=True),
        sa.Column("createdAt", vidgen.db.types.UTCDateTime(), nullable=False),
        sa.Column("updatedAt", vidgen.db.types.UTCDateTime(), nullable=False),
        sa.ForeignKeyConstraint(
            ["projectId"],
            ["project.id"],
        ),
        sa.PrimaryKeyConstraint("id"),
        mysql_charset="utf8mb4",
        mysql_collate="utf8mb4_unicode_ci",
        mysql_engine="InnoDB",
    )
    with op.batch_alter_table("clip", schema=None) as batch_op:
        batch_op.create_index("ix_clip_project_order", ["projectId", "orderIndex"], unique=False)
        batch_op.create_index(batch_op.f("ix_clip_settingsHash"), ["settingsHash"], unique=False)

    op.create_table(
        "job",
        sa.Column("id", sa.String(length=36), nullable=False),
        sa.Column("projectId", sa.String(length=36), nullable=False),
        sa.Column("jobType", sa.String(length=16), nullable=False),
        sa.Column("runsOn", sa.String(length=16), nullable=False),
        sa.Column("inputClipIds", sa.JSON(), nullable=False),
        sa.Column("jobSettings", sa.JSON(), nullable=False),
        sa.Column("dependsOn", sa.JSON(), nullable=False),
        sa.Column("outputPath", sa.String(length=1024), nullable=True),
        sa.Column("outputFileName", sa.String(length=255), nullable=True),
        sa.Column("progressPercent", sa.Float(), nullable=False),
        sa.Column("currentStage", sa.String(length=255), nullable=False),
        sa.Column("jobStatus", sa.String(length=16), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("errorMessage", sa.Text(), nullable=True),
        sa.Column("workerId", sa.String(length=255), nullable=True),
        sa.Column("leaseExpiresAt", vidgen.db.types.UTCDateTime(), nullable=True),
        sa.Column("notBefore", vidgen.db.types.UTCDateTime(), nullable=True),
        sa.Column("comfyPromptId", sa.String(length=64), nullable=True),
        sa.Column("comfyBackend", sa.String(length=255), nullable=True),
        sa.Column("cancelRequested", sa.Boolean(), nullable=False),
        sa.Column("startedAt", vidgen.db.types.UTCDateTime(), nullable=True),
        sa.Column("completedAt", vidgen.db.types.UTCDateTime(), nullable=True),
        sa.Column("createdAt", vidgen.db.types.UTCDateTime(), nullable=False),
        sa.Column("updatedAt", vidgen.db.types.UTCDateTime(), nullable=False),
        sa.ForeignKeyConstraint(
            ["projectId"],
            ["project.id"],
        ),
        sa.PrimaryKeyConstraint("id"),
        mysql_charset="utf8mb4",
        mysql_collate="utf8mb4_unicode_ci",
        mysql_engine="InnoDB",
    )
    with op.batch_alter_table("job", schema=None) as batch_op:
        batch_op.create_index("ix_job_claim", ["jobStatus", "runsOn", "createdAt"], unique=False)
        batch_op.create_index(batch_op.f("ix_job_projectId"), ["projectId"], unique=False)
        batch_op.create_index("ix_job_updated", ["updatedAt"], unique=False)

    op.create_table(
        "manifest",
        sa.Column("id", sa.String(length=36), nullable=False),
        sa.Column("projectId", sa.String(length=36), nullable=True),
        sa.Column("sourcePath", sa.String(length=1024), nullable=False),
        sa.Column("storedPath", sa.String(length=1024), nullable=True),
        sa.Column("contentHash", sa.String(length=64), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("errors", sa.JSON(), nullable=False),
        sa.Column("resolvedManifest", sa.JSON(), nullable=True),
        sa.Column("receivedAt", vidgen.db.types.UTCDateTime(), nullable=False),
        sa.ForeignKeyConstraint(
            ["projectId"],
            ["project.id"],
        ),
        sa.PrimaryKeyConstraint("id"),
        mysql_charset="utf8mb4",
        mysql_collate="utf8mb4_unicode_ci",
        mysql_engine="InnoDB",
    )
    op.create_table(
        "job_log",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("jobId", sa.String(length=36), nullable=False),
        sa.Column("logLevel", sa.String(length=16), nullable=False),
        sa.Column("logMessage", sa.Text(), nullable=False),
        sa.Column("createdAt", vidgen.db.types.UTCDateTime(), nullable=False),
        sa.ForeignKeyConstraint(
            ["jobId"],
            ["job.id"],
        ),
        sa.PrimaryKeyConstraint("id"),
        mysql_charset="utf8mb4",
        mysql_collate="utf8mb4_unicode_ci",
        mysql_engine="InnoDB",
    )
    with op.batch_alter_table("job_log", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_job_log_jobId"), ["jobId"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("job_log", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_job_log_jobId"))

    op.drop_table("job_log")
    op.drop_table("manifest")
    with op.batch_alter_table("job", schema=None) as batch_op:
        batch_op.drop_index("ix_job_updated")
        batch_op.drop_index(batch_op.f("ix_job_projectId"))
        batch_op.drop_index("ix_job_claim")

    op.drop_table("job")
    with op.batch_alter_table("clip", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_clip_settingsHash"))
        batch_op.drop_index("ix_clip_project_order")

    op.drop_table("clip")
    op.drop_table("project")
    op.drop_table("name_counter")
