"""SQLAlchemy models: the data model of docs/data-model.md, camelCase columns, snake_case
attributes.

A job's ``jobSettings`` is its request (``vidgen.specs.GenerateRequest`` / ``ExportRequest`` as
JSON), never changed once queued; what it produces is in ``jobOutputs`` and ``outputPath``, and
every ComfyUI prompt it sends is a ``ComfyPrompt`` row, written before the prompt is sent.
"""

from __future__ import annotations

import uuid
from datetime import datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import (
    JSON,
    Boolean,
    Float,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    UniqueConstraint,
    false,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship

from vidgen.db.types import UnsignedBigInt, UTCDateTime, utcnow
from vidgen.specs import Priority


def new_id() -> str:
    return str(uuid.uuid4())


class JobStatus(StrEnum):
    QUEUED = "queued"
    ACTIVE = "active"
    COMPLETED = "completed"
    FAILED = "failed"
    CANCELLED = "cancelled"


class ClipStatus(StrEnum):
    QUEUED = "queued"
    GENERATING = "generating"
    READY = "ready"
    FAILED = "failed"
    CANCELLED = "cancelled"
    REMOVED = "removed"


class JobType(StrEnum):
    GENERATE = "generate"
    MERGE = "merge"
    UPSCALE = "upscale"
    INTERPOLATE = "interpolate"
    EXPORT = "export"


class RunsOn(StrEnum):
    CPU = "cpu"  # imports and FFmpeg-only exports
    COMFYUI = "comfyui"  # anything that sends a prompt; claimed by one backend's worker


class ProjectStatus(StrEnum):
    ACTIVE = "active"
    COMPLETED = "completed"
    FAILED = "failed"
    CANCELLED = "cancelled"


class ManifestStatus(StrEnum):
    PROCESSING = "processing"
    ACCEPTED = "accepted"
    CANCEL = "cancel"
    PRIORITY = "priority"


_TEXT_OPTIONS = {"mysql_charset": "utf8mb4", "mysql_collate": "utf8mb4_unicode_ci"}


class Base(DeclarativeBase):
    type_annotation_map = {datetime: UTCDateTime(), dict[str, Any]: JSON, list[Any]: JSON}


class Project(Base):
    __tablename__ = "project"
    __table_args__ = {"mysql_engine": "InnoDB", **_TEXT_OPTIONS}

    id: Mapped[str] = mapped_column(String(36), primary_key=True, default=new_id)
    project_name: Mapped[str] = mapped_column("projectName", String(64), unique=True)
    display_name: Mapped[str] = mapped_column("displayName", String(200))
    description: Mapped[str] = mapped_column(Text, default="")
    resolution: Mapped[str] = mapped_column(String(16))
    frame_rate: Mapped[int] = mapped_column("frameRate", Integer)
    project_status: Mapped[str] = mapped_column(
        "projectStatus", String(16), default=ProjectStatus.ACTIVE
    )
    outbox_path: Mapped[str] = mapped_column("outboxPath", String(1024), default="")
    created_at: Mapped[datetime] = mapped_column("createdAt", default=utcnow)
    updated_at: Mapped[datetime] = mapped_column("updatedAt", default=utcnow, onupdate=utcnow)

    clips: Mapped[list[Clip]] = relationship(back_populates="project", order_by="Clip.order_index")
    # Declared so that one flush inserts projects before their jobs and manifests, and jobs
    # before their log lines (the unit of work orders inserts by relationships, not by FKs).
    jobs: Mapped[list[Job]] = relationship(viewonly=False, lazy="raise_on_sql")
    manifests: Mapped[list[Manifest]] = relationship(lazy="raise_on_sql")


class Clip(Base):
    __tablename__ = "clip"
    __table_args__ = (
        Index("ix_clip_project_order", "projectId", "orderIndex"),
        {"mysql_engine": "InnoDB", **_TEXT_OPTIONS},
    )

    id: Mapped[str] = mapped_column(String(36), primary_key=True, default=new_id)
    project_id: Mapped[str] = mapped_column("projectId", ForeignKey("project.id"))
    clip_name: Mapped[str] = mapped_column("clipName", String(200))
    order_index: Mapped[int] = mapped_column("orderIndex", Integer)
    generation_mode: Mapped[str] = mapped_column("generationMode", String(16))
    prompt: Mapped[str] = mapped_column(Text, default="")
    negative_prompt: Mapped[str] = mapped_column("negativePrompt", Text, default="")
    seed_value: Mapped[int] = mapped_column("seedValue", UnsignedBigInt(), default=0)
    steps_count: Mapped[int] = mapped_column("stepsCount", Integer, default=0)
    cfg_scale: Mapped[float] = mapped_column("cfgScale", Float, default=0.0)
    frame_count: Mapped[int] = mapped_column("frameCount", Integer, default=0)
    width: Mapped[int] = mapped_column(Integer, default=0)
    height: Mapped[int] = mapped_column(Integer, default=0)
    checkpoint: Mapped[str] = mapped_column(String(255), default="")
    motion_module: Mapped[str] = mapped_column("motionModule", String(255), default="")
    reference_image: Mapped[str | None] = mapped_column("referenceImage", String(1024))
    ip_adapter_weight: Mapped[float | None] = mapped_column("ipAdapterWeight", Float)
    settings_hash: Mapped[str] = mapped_column("settingsHash", String(64), index=True)
    file_path: Mapped[str | None] = mapped_column("filePath", String(1024))
    file_name: Mapped[str | None] = mapped_column("fileName", String(255))
    thumbnail_path: Mapped[str | None] = mapped_column("thumbnailPath", String(1024))
    thumbnail_name: Mapped[str | None] = mapped_column("thumbnailName", String(255))
    duration_sec: Mapped[float | None] = mapped_column("durationSec", Float)
    clip_status: Mapped[str] = mapped_column("clipStatus", String(16), default=ClipStatus.QUEUED)
    error_message: Mapped[str | None] = mapped_column("errorMessage", Text)
    workflow_json: Mapped[dict[str, Any] | None] = mapped_column("workflowJson", JSON)
    created_at: Mapped[datetime] = mapped_column("createdAt", default=utcnow)
    updated_at: Mapped[datetime] = mapped_column("updatedAt", default=utcnow, onupdate=utcnow)

    project: Mapped[Project] = relationship(back_populates="clips")


class Job(Base):
    __tablename__ = "job"
    __table_args__ = (
        # claim_next walks it: a kind's jobs that can run, by priority, then age
        Index("ix_job_claim", "jobStatus", "runsOn", "waitsForClips", "priority", "createdAt"),
        Index("ix_job_updated", "updatedAt"),
        Index("ix_job_created", "createdAt", "id"),  # the status page's newest-first list
        {"mysql_engine": "InnoDB", **_TEXT_OPTIONS},
    )

    id: Mapped[str] = mapped_column(String(36), primary_key=True, default=new_id)
    project_id: Mapped[str] = mapped_column("projectId", ForeignKey("project.id"), index=True)
    job_type: Mapped[str] = mapped_column("jobType", String(16))
    runs_on: Mapped[str] = mapped_column("runsOn", String(16), default=RunsOn.CPU)
    input_clip_ids: Mapped[list[Any]] = mapped_column("inputClipIds", JSON, default=list)
    job_settings: Mapped[dict[str, Any]] = mapped_column("jobSettings", JSON, default=dict)
    depends_on: Mapped[list[Any]] = mapped_column("dependsOn", JSON, default=list)
    output_path: Mapped[str | None] = mapped_column("outputPath", String(1024))
    output_file_name: Mapped[str | None] = mapped_column("outputFileName", String(255))
    progress_percent: Mapped[float] = mapped_column("progressPercent", Float, default=0.0)
    current_stage: Mapped[str] = mapped_column("currentStage", String(255), default="queued")
    job_status: Mapped[str] = mapped_column("jobStatus", String(16), default=JobStatus.QUEUED)
    priority: Mapped[int] = mapped_column(Integer, default=Priority.NORMAL, server_default="0")
    # An export with a clip still to be made; cleared in the transaction that makes the last one.
    waits_for_clips: Mapped[bool] = mapped_column(
        "waitsForClips", Boolean, default=False, server_default=false()
    )
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    error_message: Mapped[str | None] = mapped_column("errorMessage", Text)
    worker_id: Mapped[str | None] = mapped_column("workerId", String(255))
    lease_expires_at: Mapped[datetime | None] = mapped_column("leaseExpiresAt")
    not_before: Mapped[datetime | None] = mapped_column("notBefore")
    job_outputs: Mapped[dict[str, Any] | None] = mapped_column("jobOutputs", JSON)
    comfy_backend: Mapped[str | None] = mapped_column("comfyBackend", String(255))
    cancel_requested: Mapped[bool] = mapped_column("cancelRequested", Boolean, default=False)
    started_at: Mapped[datetime | None] = mapped_column("startedAt")
    completed_at: Mapped[datetime | None] = mapped_column("completedAt")
    created_at: Mapped[datetime] = mapped_column("createdAt", default=utcnow)
    updated_at: Mapped[datetime] = mapped_column("updatedAt", default=utcnow, onupdate=utcnow)

    logs: Mapped[list[JobLog]] = relationship(lazy="raise_on_sql", order_by="JobLog.id")


class ComfyPrompt(Base):
    """One prompt a job sent to ComfyUI (or is about to: the row comes first), with the graph
    exactly as sent. ``step`` names the part of the job it does (``clip``, ``upscale_0000``,
    ``interpolate``); a step sent again gets a new row, and the newest one counts."""

    __tablename__ = "comfy_prompt"
    __table_args__ = (
        Index("ix_comfy_prompt_job", "jobId", "createdAt"),
        {"mysql_engine": "InnoDB", **_TEXT_OPTIONS},
    )

    id: Mapped[str] = mapped_column(String(64), primary_key=True)  # ComfyUI's prompt_id
    job_id: Mapped[str] = mapped_column("jobId", ForeignKey("job.id"))
    step: Mapped[str] = mapped_column(String(64))
    backend: Mapped[str] = mapped_column(String(255))
    graph: Mapped[dict[str, Any]] = mapped_column(JSON)
    created_at: Mapped[datetime] = mapped_column("createdAt", default=utcnow)


class JobLog(Base):
    __tablename__ = "job_log"
    __table_args__ = {"mysql_engine": "InnoDB", **_TEXT_OPTIONS}

    # A sequence, not a UUID: log lines are read in the order they were written.
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    job_id: Mapped[str] = mapped_column("jobId", ForeignKey("job.id"), index=True)
    log_level: Mapped[str] = mapped_column("logLevel", String(16))
    log_message: Mapped[str] = mapped_column("logMessage", Text)
    created_at: Mapped[datetime] = mapped_column("createdAt", default=utcnow)


class Manifest(Base):
    __tablename__ = "manifest"
    __table_args__ = {"mysql_engine": "InnoDB", **_TEXT_OPTIONS}

    id: Mapped[str] = mapped_column(String(36), primary_key=True, default=new_id)
    project_id: Mapped[str | None] = mapped_column("projectId", ForeignKey("project.id"))
    source_path: Mapped[str] = mapped_column("sourcePath", String(1024))
    stored_path: Mapped[str | None] = mapped_column("storedPath", String(1024))
    content_hash: Mapped[str] = mapped_column("contentHash", String(64))
    status: Mapped[str] = mapped_column(String(16))
    errors: Mapped[list[Any]] = mapped_column(JSON, default=list)
    resolved_manifest: Mapped[dict[str, Any] | None] = mapped_column("resolvedManifest", JSON)
    received_at: Mapped[datetime] = mapped_column("receivedAt", default=utcnow)


class NameCounter(Base):
    """The last index handed out per (projectName, file type): one row lock serialises takers."""

    __tablename__ = "name_counter"
    __table_args__ = {"mysql_engine": "InnoDB", **_TEXT_OPTIONS}

    project_name: Mapped[str] = mapped_column("projectName", String(64), primary_key=True)
    file_type: Mapped[str] = mapped_column("fileType", String(16), primary_key=True)
    last_index: Mapped[int] = mapped_column("lastIndex", Integer, default=0)


class EventKind(StrEnum):
    """What a notification is about (``notifications.*.events`` in config.yaml)."""

    COMPLETED = "completed"  # a project's export was delivered
    FAILED = "failed"  # a job failed for good
    REJECTED = "rejected"  # a manifest was rejected
    QUEUE_EMPTY = "queueEmpty"  # the last queued or active job ended
    ATTENTION = "attention"  # a backend unreachable, or a disk nearly full, for a while


class Event(Base):
    """Something to notify about, written in the transaction of the change that caused it (a
    transactional outbox): it exists exactly when the change does, whatever crashes after."""

    __tablename__ = "event"
    __table_args__ = (
        Index("ix_event_fan_out", "fannedOutAt"),
        {"mysql_engine": "InnoDB", **_TEXT_OPTIONS},
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    kind: Mapped[str] = mapped_column(String(16))
    project_id: Mapped[str | None] = mapped_column("projectId", ForeignKey("project.id"))
    job_id: Mapped[str | None] = mapped_column("jobId", ForeignKey("job.id"))
    # Events that several processes may notice (a rejection redone after a crash, the queue
    # running empty, an attention episode) carry a key; the unique index keeps one of each.
    dedup_key: Mapped[str | None] = mapped_column("dedupKey", String(255), unique=True)
    payload: Mapped[dict[str, Any]] = mapped_column(JSON)
    fanned_out_at: Mapped[datetime | None] = mapped_column("fannedOutAt")  # deliveries made
    created_at: Mapped[datetime] = mapped_column("createdAt", default=utcnow)


class Delivery(Base):
    """One event to one configured target; ``target`` is the target's key (a hash of its kind
    and URL: URLs may hold tokens, and are not stored)."""

    __tablename__ = "delivery"
    __table_args__ = (
        Index("ix_delivery_due", "deliveredAt", "nextTryAt"),
        Index("ix_delivery_target", "target", "updatedAt"),
        UniqueConstraint("eventId", "target", name="uq_delivery_event_target"),
        {"mysql_engine": "InnoDB", **_TEXT_OPTIONS},
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    event_id: Mapped[int] = mapped_column("eventId", ForeignKey("event.id"))
    target: Mapped[str] = mapped_column(String(64))
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    # Due when not null and past; a claim moves it forward by the claim's lease. Null and not
    # delivered: given up after notifications.maxAttempts.
    next_try_at: Mapped[datetime | None] = mapped_column("nextTryAt")
    delivered_at: Mapped[datetime | None] = mapped_column("deliveredAt")
    last_error: Mapped[str | None] = mapped_column("lastError", Text)
    created_at: Mapped[datetime] = mapped_column("createdAt", default=utcnow)
    updated_at: Mapped[datetime] = mapped_column("updatedAt", default=utcnow, onupdate=utcnow)


class ServiceStatus(Base):
    """One running part of vidgen on one host (``part`` ``intake`` today) and when it last said
    it is alive, so a status page on any host can tell a live part from a dead one."""

    __tablename__ = "service_status"
    __table_args__ = {"mysql_engine": "InnoDB", **_TEXT_OPTIONS}

    id: Mapped[str] = mapped_column(String(36), primary_key=True)  # one per running instance
    part: Mapped[str] = mapped_column(String(32), index=True)
    host: Mapped[str] = mapped_column(String(255))
    started_at: Mapped[datetime] = mapped_column("startedAt", default=utcnow)
    seen_at: Mapped[datetime] = mapped_column("seenAt", default=utcnow)
    details: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
