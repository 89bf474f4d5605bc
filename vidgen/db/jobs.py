"""Every job and clip status change, each one transaction, named for the transition; claims
are in ``vidgen.db.claims``.

A worker's writes go through ``_owned``: the row is locked (on MariaDB) and must still be active
and held by that worker, so a worker whose lease was taken over never overwrites the new owner.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum
from pathlib import PurePath
from typing import Any

from sqlalchemy import or_, select, update
from sqlalchemy.orm import Session

from vidgen.db import outbox
from vidgen.db.models import (
    Clip,
    ClipStatus,
    ComfyPrompt,
    Job,
    JobLog,
    JobStatus,
    JobType,
    Project,
    ProjectStatus,
    RunsOn,
    new_id,
)
from vidgen.db.queries import SentPrompt
from vidgen.db.session import Database
from vidgen.db.types import utcnow
from vidgen.specs import ExportRequest, GenerateRequest, JobOutputs, JobRequest, Priority

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class ClaimedJob:
    """A snapshot of a job at the moment this worker claimed it."""

    id: str
    project_id: str
    project_name: str
    job_type: JobType
    request: JobRequest
    input_clip_ids: tuple[str, ...]
    attempts: int
    worker_id: str
    outputs: JobOutputs
    prompts: tuple[SentPrompt, ...]  # oldest first

    def last_prompt(self, step: str) -> SentPrompt | None:
        """The newest prompt recorded for ``step`` (an earlier attempt's, before this one)."""
        found = [p for p in self.prompts if p.step == step]
        return found[-1] if found else None

    @property
    def generate(self) -> GenerateRequest:
        if not isinstance(self.request, GenerateRequest):
            raise TypeError(f"job {self.id} is a {self.job_type} job, not a generate job")
        return self.request

    @property
    def export(self) -> ExportRequest:
        if not isinstance(self.request, ExportRequest):
            raise TypeError(f"job {self.id} is a {self.job_type} job, not an export job")
        return self.request


class LeaseState(StrEnum):
    OURS = "ours"
    CANCEL_REQUESTED = "cancelRequested"
    LOST = "lost"  # another worker has it, or it ended: stop without writing


def request_of(job: Job) -> JobRequest:
    """The typed request a job row stores."""
    if job.job_type == JobType.GENERATE:
        return GenerateRequest.from_json(job.job_settings)
    return ExportRequest.from_json(job.job_settings)


def add_job_log(session: Session, job_id: str, level: str, message: str) -> None:
    session.add(JobLog(job_id=job_id, log_level=level, log_message=message))


def write_log(database: Database, job_id: str, level: str, message: str) -> None:
    """A line for a person, in the job's log on the status page."""
    with database.session() as session:
        add_job_log(session, job_id, level, message)


def add_generate_job(
    session: Session,
    project_id: str,
    clip_id: str,
    request: GenerateRequest,
    runs_on: RunsOn,
    priority: Priority = Priority.NORMAL,
) -> Job:
    job = Job(
        project_id=project_id,
        job_type=JobType.GENERATE,
        runs_on=runs_on,
        priority=priority,
        input_clip_ids=[clip_id],
        job_settings=request.to_json(),
        depends_on=[],
    )
    return _queue(session, job, "queued")


def add_export_job(
    session: Session,
    project_id: str,
    clip_ids: Sequence[str],
    request: ExportRequest,
    depends_on: Sequence[str],
    priority: Priority = Priority.NORMAL,
    *,
    waits_for_clips: bool,
) -> Job:
    """``waits_for_clips``: one of the clips is still to be made (``release_exports`` frees it)."""
    job = Job(
        project_id=project_id,
        job_type=JobType.EXPORT,
        priority=priority,
        waits_for_clips=waits_for_clips,
        runs_on=RunsOn.COMFYUI if request.export.needs_comfyui else RunsOn.CPU,
        input_clip_ids=list(clip_ids),
        job_settings=request.to_json(),
        depends_on=list(depends_on),
    )
    return _queue(session, job, "queued; waits for its clips")


def _queue(session: Session, job: Job, note: str) -> Job:
    # The id is set here, not by a flush: intake records a whole manifest in one flush.
    job.id = new_id()
    session.add(job)
    add_job_log(session, job.id, "INFO", note)
    return job


def _owned(session: Session, job_id: str, worker_id: str) -> Job | None:
    # Locked (on MariaDB) so that a claim by another worker cannot interleave with our write.
    job = session.get(Job, job_id, with_for_update=True)
    if job is None or job.job_status != JobStatus.ACTIVE or job.worker_id != worker_id:
        return None
    return job


def renew_lease(
    database: Database, job_id: str, worker_id: str, lease_seconds: float
) -> LeaseState:
    with database.session() as session:
        job = _owned(session, job_id, worker_id)
        if job is None:
            return LeaseState.LOST
        job.lease_expires_at = utcnow() + timedelta(seconds=lease_seconds)
        return LeaseState.CANCEL_REQUESTED if job.cancel_requested else LeaseState.OURS


def lease_states(
    database: Database, job_ids: Sequence[str], worker_id: str
) -> dict[str, LeaseState]:
    """Each job's state for the worker holding it, read without writing (the short poll that
    brings a cancel to a worker between its lease renewals). A cancel counts even when the job
    is no longer ours: whoever holds it stops it too."""
    with database.session() as session:
        rows = {
            row.id: row
            for row in session.execute(
                select(Job.id, Job.job_status, Job.worker_id, Job.cancel_requested).where(
                    Job.id.in_(job_ids)
                )
            )
        }
    states = {}
    for job_id in job_ids:
        row = rows.get(job_id)
        if row is not None and row.cancel_requested:
            states[job_id] = LeaseState.CANCEL_REQUESTED
        elif row is None or row.job_status != JobStatus.ACTIVE or row.worker_id != worker_id:
            states[job_id] = LeaseState.LOST
        else:
            states[job_id] = LeaseState.OURS
    return states


def report_progress(
    database: Database, job_id: str, worker_id: str, percent: float, stage: str
) -> LeaseState:
    """Write progress; the answer tells the worker whether to go on."""
    with database.session() as session:
        job = _owned(session, job_id, worker_id)
        if job is None:
            return LeaseState.LOST
        job.progress_percent = max(0.0, min(100.0, round(percent, 1)))
        job.current_stage = stage[:255]
        return LeaseState.CANCEL_REQUESTED if job.cancel_requested else LeaseState.OURS


def record_prompt(database: Database, job_id: str, worker_id: str, prompt: SentPrompt) -> bool:
    """Remember a ComfyUI prompt (and its graph, exactly as it will be sent) before it is sent,
    so a restarted worker looks it up instead of running it twice. False if the job is no
    longer ours: then nothing may be sent."""
    with database.session() as session:
        job = _owned(session, job_id, worker_id)
        if job is None:
            return False
        job.comfy_backend = prompt.backend
        session.add(
            ComfyPrompt(
                id=prompt.prompt_id,
                job_id=job_id,
                step=prompt.step,
                backend=prompt.backend,
                graph=prompt.graph,
            )
        )
        return True


def record_outputs(database: Database, job_id: str, worker_id: str, outputs: JobOutputs) -> bool:
    """Remember the final paths before files are renamed into place, so a worker that dies
    between the rename and ``complete_*`` finds them instead of leaving orphans."""
    with database.session() as session:
        job = _owned(session, job_id, worker_id)
        if job is None:
            return False
        job.job_outputs = outputs.to_json()
        return True


@dataclass(frozen=True, slots=True)
class PlacedClip:
    """A clip's video in storage, as ffprobe measured it, and the graph that made it."""

    file_path: str
    thumbnail_path: str
    duration_sec: float
    frame_count: int
    width: int
    height: int
    workflow: dict[str, Any] | None


def complete_generate(database: Database, job_id: str, worker_id: str, placed: PlacedClip) -> bool:
    """The clip is ready with its file; False if the job was no longer ours."""
    with database.session() as session:
        job = _owned(session, job_id, worker_id)
        if job is None:
            return False
        for clip in session.scalars(select(Clip).where(Clip.id.in_(job.input_clip_ids))):
            clip.file_path = placed.file_path
            clip.file_name = PurePath(placed.file_path).name
            clip.thumbnail_path = placed.thumbnail_path
            clip.thumbnail_name = PurePath(placed.thumbnail_path).name
            clip.duration_sec = round(placed.duration_sec, 3)
            clip.frame_count = placed.frame_count
            clip.width, clip.height = placed.width, placed.height
            if placed.workflow is not None:
                clip.workflow_json = placed.workflow
            clip.clip_status = ClipStatus.READY
            clip.error_message = None
        release_exports(session, job.project_id)
        job.output_path = placed.file_path
        job.output_file_name = PurePath(placed.file_path).name
        end_job(session, job, JobStatus.COMPLETED, "completed", utcnow())
        return True


def complete_export(database: Database, job_id: str, worker_id: str, output_path: str) -> bool:
    with database.session() as session:
        job = _owned(session, job_id, worker_id)
        if job is None:
            return False
        job.output_path = output_path
        job.output_file_name = PurePath(output_path).name
        end_job(session, job, JobStatus.COMPLETED, "completed", utcnow())
        set_project_status(session, job.project_id, ProjectStatus.COMPLETED)
        return True


def fail(database: Database, job_id: str, worker_id: str, message: str) -> None:
    """The job failed for good: its clip fails, and so do exports waiting for that clip."""
    now = utcnow()
    with database.session() as session:
        job = _owned(session, job_id, worker_id)
        if job is None:
            return
        end_job(session, job, JobStatus.FAILED, message, now)
        fail_clips(session, job, message)
        if job.job_type == JobType.EXPORT:
            set_project_status(session, job.project_id, ProjectStatus.FAILED)


def retry_later(
    database: Database, job_id: str, worker_id: str, message: str, delay_seconds: float
) -> None:
    """Back to the queue after a transient failure, due again after ``delay_seconds``."""
    with database.session() as session:
        job = _owned(session, job_id, worker_id)
        if job is None:
            return
        _unclaim(job, f"retrying in {delay_seconds:.0f} s: {message}")
        job.not_before = utcnow() + timedelta(seconds=delay_seconds)
        job.error_message = message
        add_job_log(session, job.id, "WARNING", f"{message}; retrying in {delay_seconds:.1f} s")


def postpone(
    database: Database, job_id: str, worker_id: str, reason: str, delay_seconds: float
) -> None:
    """Back to the queue untried (no attempt counted), due again after ``delay_seconds``."""
    with database.session() as session:
        job = _owned(session, job_id, worker_id)
        if job is None:
            return
        add_job_log(session, job.id, "WARNING", reason)
        _unclaim(job, reason)
        job.attempts = max(0, job.attempts - 1)
        job.not_before = utcnow() + timedelta(seconds=delay_seconds)


def release(database: Database, job_id: str, worker_id: str) -> None:
    """Give a job back on shutdown; its ComfyUI prompts stay recorded, to be collected next
    start."""
    with database.session() as session:
        job = _owned(session, job_id, worker_id)
        if job is None:
            return
        _unclaim(job, "waiting: vidgen stopped while it ran")
        job.attempts = max(0, job.attempts - 1)  # a shutdown is no failed try
        add_job_log(session, job.id, "INFO", "released at shutdown")


def _unclaim(job: Job, stage: str) -> None:
    job.job_status = JobStatus.QUEUED
    job.worker_id = None
    job.lease_expires_at = None
    job.current_stage = stage[:255]


def mark_cancelled(database: Database, job_id: str, worker_id: str) -> None:
    with database.session() as session:
        job = _owned(session, job_id, worker_id)
        if job is None:
            return
        end_job(session, job, JobStatus.CANCELLED, "cancelled", utcnow())
        _cancel_clips(session, job)


def cancel_project(database: Database, project_id: str, session: Session | None = None) -> int:
    """Queued jobs end cancelled now; running ones are asked to stop. Returns how many."""
    if session is None:
        with database.session() as own:
            return cancel_project(database, project_id, own)
    now = utcnow()
    jobs = session.scalars(
        select(Job).where(
            Job.project_id == project_id,
            Job.job_status.in_([JobStatus.QUEUED, JobStatus.ACTIVE]),
        )
    ).all()
    for job in jobs:
        if job.job_status == JobStatus.QUEUED:
            end_job(session, job, JobStatus.CANCELLED, "cancelled", now)
            _cancel_clips(session, job)
        else:
            job.cancel_requested = True
            add_job_log(session, job.id, "INFO", "cancel requested")
    set_project_status(session, project_id, ProjectStatus.CANCELLED)
    return len(jobs)


def end_job(session: Session, job: Job, status: JobStatus, message: str, now: datetime) -> None:
    job.job_status = status
    job.completed_at = now
    job.lease_expires_at = None
    job.current_stage = message[:255] if status != JobStatus.COMPLETED else "done"
    if status == JobStatus.COMPLETED:
        job.progress_percent = 100.0
        job.error_message = None
    elif status == JobStatus.FAILED:
        job.error_message = message
    level = "ERROR" if status == JobStatus.FAILED else "INFO"
    add_job_log(session, job.id, level, message)
    # The notification of this end, if any, in the same transaction (the outbox).
    outbox.job_ended(session, job, status)


def fail_clips(session: Session, job: Job, message: str) -> None:
    if job.job_type != JobType.GENERATE:
        return
    for clip in session.scalars(select(Clip).where(Clip.id.in_(job.input_clip_ids))):
        clip.clip_status = ClipStatus.FAILED
        clip.error_message = message
    release_exports(session, job.project_id)  # the claim fails them, naming the clip


def _cancel_clips(session: Session, job: Job) -> None:
    if job.job_type != JobType.GENERATE:
        return
    for clip in session.scalars(select(Clip).where(Clip.id.in_(job.input_clip_ids))):
        if clip.clip_status in (ClipStatus.QUEUED, ClipStatus.GENERATING):
            clip.clip_status = ClipStatus.CANCELLED
    release_exports(session, job.project_id)


# An export waits while one of its clips is in one of these (REMOVED: left out by a newer manifest).
PENDING_CLIPS = (ClipStatus.QUEUED, ClipStatus.GENERATING, ClipStatus.REMOVED)


def release_exports(session: Session, project_id: str) -> None:
    """The project's queued exports that waited for clips, claimable once none of their clips
    is still being made (a failed one too: the claim fails the export, saying which)."""
    waiting = session.scalars(
        select(Job).where(
            Job.project_id == project_id,
            Job.job_type == JobType.EXPORT,
            Job.job_status == JobStatus.QUEUED,
            Job.waits_for_clips.is_(True),
        )
    )
    for export in waiting:
        statuses = session.scalars(
            select(Clip.clip_status).where(Clip.id.in_(export.input_clip_ids))
        )
        export.waits_for_clips = any(status in PENDING_CLIPS for status in statuses)


def set_project_priority(session: Session, project_id: str, priority: Priority) -> int:
    """The project's waiting and running jobs take ``priority``; returns how many."""
    result = session.execute(
        update(Job)
        .where(
            Job.project_id == project_id,
            Job.job_status.in_((JobStatus.QUEUED, JobStatus.ACTIVE)),
            Job.priority != priority,
        )
        .values(priority=priority)
        .execution_options(synchronize_session=False)
    )
    return int(result.rowcount)  # type: ignore[attr-defined]


def set_project_status(session: Session, project_id: str, status: ProjectStatus) -> None:
    project = session.get(Project, project_id)
    if project is not None:
        project.project_status = status


def note_waiting(database: Database, runs_on: RunsOn, reason: str) -> None:
    """Show queued jobs of this kind why they wait (replacing only a plain or older wait note)."""
    with database.session() as session:
        session.execute(
            update(Job)
            .where(
                Job.job_status == JobStatus.QUEUED,
                Job.runs_on == runs_on,
                or_(Job.current_stage == "queued", Job.current_stage.like("waiting%")),
                Job.current_stage != reason,
            )
            .values(current_stage=reason[:255])
        )


@dataclass(frozen=True, slots=True)
class ClipFile:
    clip_id: str
    clip_name: str
    file_path: str | None
    clip_status: ClipStatus
    error_message: str | None
    seed: int = 0  # the settings a contact sheet's label may show
    cfg: float = 0.0
    steps: int = 0


def clip_files(database: Database, clip_ids: Sequence[str]) -> list[ClipFile]:
    """The files of these clips, in the order given."""
    with database.session() as session:
        rows = {c.id: c for c in session.scalars(select(Clip).where(Clip.id.in_(clip_ids)))}
    return [
        ClipFile(
            clip_id,
            row.clip_name,
            row.file_path,
            ClipStatus(row.clip_status),
            row.error_message,
            row.seed_value,
            row.cfg_scale,
            row.steps_count,
        )
        for clip_id in clip_ids
        if (row := rows.get(clip_id)) is not None
    ]


# Clip and project transitions of a manifest being recorded; intake calls them inside its one
# transaction (vidgen/db/manifests.py), so they take the ORM rows, not ids.


def remove_clip(clip: Clip) -> None:
    """Left out of the newest manifest: out of the order; its files stay."""
    clip.clip_status = ClipStatus.REMOVED


def reuse_clip(clip: Clip) -> None:
    """Back in a manifest with its video made: ready again, nothing to generate."""
    clip.clip_status = ClipStatus.READY


def retry_clip(clip: Clip) -> None:
    """A failed or cancelled clip named again: queued for a new generate job."""
    clip.clip_status = ClipStatus.QUEUED
    clip.error_message = None


def reopen_project(project: Project) -> None:
    """New work for the project: active until its export ends."""
    project.project_status = ProjectStatus.ACTIVE
