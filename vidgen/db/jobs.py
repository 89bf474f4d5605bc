"""Every job and clip status change, each one transaction, named for the transition.

Claims use ``FOR UPDATE SKIP LOCKED`` on MariaDB, so several workers (and hosts) never take the
same job; SQLite has one writer at a time, and the claim re-checks the row under that lock.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Any

from sqlalchemy import or_, select, update
from sqlalchemy.orm import Session

from vidgen.db.models import (
    Clip,
    ClipStatus,
    Job,
    JobLog,
    JobStatus,
    JobType,
    Project,
    ProjectStatus,
    RunsOn,
    new_id,
)
from vidgen.db.session import Database
from vidgen.db.types import utcnow

log = logging.getLogger(__name__)

_CANDIDATES = 20


@dataclass(frozen=True, slots=True)
class ClaimedJob:
    """A snapshot of a job at the moment this worker claimed it."""

    id: str
    project_id: str
    project_name: str
    job_type: JobType
    job_settings: dict[str, Any]
    input_clip_ids: list[str]
    attempts: int
    comfy_prompt_id: str | None
    comfy_backend: str | None
    output_path: str | None
    worker_id: str
    depends_on: list[str] = field(default_factory=list)


class LeaseState(StrEnum):
    OURS = "ours"
    CANCEL_REQUESTED = "cancelRequested"
    LOST = "lost"  # another worker has it, or it ended: stop without writing


def add_job_log(session: Session, job_id: str, level: str, message: str) -> None:
    session.add(JobLog(job_id=job_id, log_level=level, log_message=message))


def write_log(database: Database, job_id: str, level: str, message: str) -> None:
    """A line for a person, in the job's log on the status page."""
    with database.session() as session:
        add_job_log(session, job_id, level, message)


def add_generate_job(
    session: Session, project_id: str, clip_id: str, clip_spec: dict[str, Any], runs_on: RunsOn
) -> Job:
    job = Job(
        project_id=project_id,
        job_type=JobType.GENERATE,
        runs_on=runs_on,
        input_clip_ids=[clip_id],
        job_settings={"clip": clip_spec},
        depends_on=[],
    )
    return _queue(session, job, "queued")


def add_export_job(
    session: Session,
    project_id: str,
    clip_ids: Sequence[str],
    settings: dict[str, Any],
    depends_on: Sequence[str],
    runs_on: RunsOn,
) -> Job:
    job = Job(
        project_id=project_id,
        job_type=JobType.EXPORT,
        runs_on=runs_on,
        input_clip_ids=list(clip_ids),
        job_settings=settings,
        depends_on=list(depends_on),
    )
    return _queue(session, job, "queued; waits for its clips")


def _queue(session: Session, job: Job, note: str) -> Job:
    # The id is set here, not by a flush: intake records a whole manifest in one flush.
    job.id = new_id()
    session.add(job)
    add_job_log(session, job.id, "INFO", note)
    return job


def claim_next(
    database: Database,
    worker_id: str,
    runs_on: RunsOn,
    *,
    lease_seconds: float,
    max_attempts: int,
    backend: str | None = None,
    prefer_checkpoint: str | None = None,
) -> ClaimedJob | None:
    """Take the next runnable job of this worker's kind: queued (and due), or abandoned by a
    worker whose lease ran out. Exports wait until their clips are ready."""
    now = utcnow()
    with database.session() as session:
        query = (
            select(Job)
            .where(Job.runs_on == runs_on)
            .where(
                or_(
                    (Job.job_status == JobStatus.QUEUED)
                    & or_(Job.not_before.is_(None), Job.not_before <= now),
                    (Job.job_status == JobStatus.ACTIVE) & (Job.lease_expires_at < now),
                )
            )
            .order_by(Job.created_at, Job.id)
            .limit(_CANDIDATES)
        )
        if database.is_mysql:
            query = query.with_for_update(skip_locked=True)
        candidates = list(session.scalars(query))
        runnable = [
            job
            for job in candidates
            if _runnable(session, job, backend=backend, max_attempts=max_attempts, now=now)
        ]
        if not runnable:
            return None
        job = _pick(runnable, prefer_checkpoint)
        if not _take(session, job, worker_id, lease_seconds, now):
            return None
        project_name = session.get_one(Project, job.project_id).project_name
        _mark_clip_generating(session, job)
        return _snapshot(job, project_name, worker_id)


def _runnable(
    session: Session, job: Job, *, backend: str | None, max_attempts: int, now: datetime
) -> bool:
    """Settle the jobs that can no longer run (cancelled, out of tries, failed inputs)."""
    if job.cancel_requested:
        _end(session, job, JobStatus.CANCELLED, "cancelled", now)
        return False
    if job.job_status == JobStatus.ACTIVE:
        if job.comfy_prompt_id and job.comfy_backend and job.comfy_backend != backend:
            # Its prompt sits in another backend's queue: only that backend's worker can
            # collect the result without running the prompt twice.
            return False
        lapsed = f"worker {job.worker_id} stopped renewing its lease"
        add_job_log(session, job.id, "WARNING", lapsed)
        if job.attempts >= max_attempts:
            message = f"gave up after {job.attempts} attempts: its worker kept stopping"
            _end(session, job, JobStatus.FAILED, message, now)
            _fail_clips(session, job, message)
            return False
    if job.job_type == JobType.EXPORT:
        return _inputs_ready(session, job, now)
    return True


def _inputs_ready(session: Session, job: Job, now: datetime) -> bool:
    clips = {c.id: c for c in session.scalars(select(Clip).where(Clip.id.in_(job.input_clip_ids)))}
    for clip_id in job.input_clip_ids:
        clip = clips.get(clip_id)
        if clip is None or clip.clip_status in (ClipStatus.FAILED, ClipStatus.CANCELLED):
            name = clip.clip_name if clip else clip_id
            reason = clip.error_message if clip and clip.error_message else "it did not finish"
            message = f"clip {name} failed: {reason}"
            _end(session, job, JobStatus.FAILED, message, now)
            _set_project_status(session, job.project_id, ProjectStatus.FAILED)
            return False
    return all(clips[c].clip_status == ClipStatus.READY for c in job.input_clip_ids)


def _pick(runnable: list[Job], prefer_checkpoint: str | None) -> Job:
    # Clips sharing a checkpoint run back to back: ComfyUI keeps it loaded.
    if prefer_checkpoint:
        for job in runnable:
            if job.job_settings.get("clip", {}).get("checkpoint") == prefer_checkpoint:
                return job
    return runnable[0]


def _take(session: Session, job: Job, worker_id: str, lease_seconds: float, now: datetime) -> bool:
    # Compare-and-set on the status seen, so that on SQLite (no row locks) two claimers
    # cannot both win.
    result = session.execute(
        update(Job)
        .where(Job.id == job.id, Job.job_status == job.job_status, Job.attempts == job.attempts)
        .values(
            job_status=JobStatus.ACTIVE,
            worker_id=worker_id,
            lease_expires_at=now + timedelta(seconds=lease_seconds),
            attempts=job.attempts + 1,
            started_at=job.started_at or now,
            current_stage="starting",
            error_message=None,
            updated_at=now,
        )
        .execution_options(synchronize_session="fetch")
    )
    if result.rowcount != 1:  # type: ignore[attr-defined]
        return False
    session.refresh(job)
    add_job_log(session, job.id, "INFO", f"claimed by {worker_id} (attempt {job.attempts})")
    return True


def _mark_clip_generating(session: Session, job: Job) -> None:
    if job.job_type != JobType.GENERATE:
        return
    for clip in session.scalars(select(Clip).where(Clip.id.in_(job.input_clip_ids))):
        clip.clip_status = ClipStatus.GENERATING


def _snapshot(job: Job, project_name: str, worker_id: str) -> ClaimedJob:
    return ClaimedJob(
        id=job.id,
        project_id=job.project_id,
        project_name=project_name,
        job_type=JobType(job.job_type),
        job_settings=dict(job.job_settings),
        input_clip_ids=list(job.input_clip_ids),
        attempts=job.attempts,
        comfy_prompt_id=job.comfy_prompt_id,
        comfy_backend=job.comfy_backend,
        output_path=job.output_path,
        worker_id=worker_id,
        depends_on=list(job.depends_on),
    )


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


def record_prompt(
    database: Database,
    job_id: str,
    worker_id: str,
    prompt_id: str,
    backend: str,
    graph: dict[str, Any],
) -> None:
    """Remember which ComfyUI prompt runs this job (and the graph, exactly as sent) before it is
    sent, so a restarted worker collects it instead of running it twice."""
    with database.session() as session:
        job = _owned(session, job_id, worker_id)
        if job is not None:
            job.comfy_prompt_id = prompt_id
            job.comfy_backend = backend
            submitted = {"promptId": prompt_id, "backend": backend, "graph": graph}
            job.job_settings = {**job.job_settings, "submitted": submitted}


def complete_generate(
    database: Database, job_id: str, worker_id: str, clip_fields: dict[str, Any]
) -> bool:
    """The clip is ready with its file; False if the job was no longer ours."""
    with database.session() as session:
        job = _owned(session, job_id, worker_id)
        if job is None:
            return False
        for clip in session.scalars(select(Clip).where(Clip.id.in_(job.input_clip_ids))):
            for name, value in clip_fields.items():
                setattr(clip, name, value)
            clip.clip_status = ClipStatus.READY
            clip.error_message = None
        _end(session, job, JobStatus.COMPLETED, "completed", utcnow())
        return True


def complete_export(
    database: Database, job_id: str, worker_id: str, output_path: str, output_file_name: str
) -> bool:
    with database.session() as session:
        job = _owned(session, job_id, worker_id)
        if job is None:
            return False
        job.output_path = output_path
        job.output_file_name = output_file_name
        _end(session, job, JobStatus.COMPLETED, "completed", utcnow())
        _set_project_status(session, job.project_id, ProjectStatus.COMPLETED)
        return True


def fail(database: Database, job_id: str, worker_id: str, message: str) -> None:
    """The job failed for good: its clip fails, and so do exports waiting for that clip."""
    now = utcnow()
    with database.session() as session:
        job = _owned(session, job_id, worker_id)
        if job is None:
            return
        _end(session, job, JobStatus.FAILED, message, now)
        _fail_clips(session, job, message)
        if job.job_type == JobType.EXPORT:
            _set_project_status(session, job.project_id, ProjectStatus.FAILED)


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


def release(database: Database, job_id: str, worker_id: str) -> None:
    """Give a job back on shutdown; its ComfyUI prompt id stays, to be collected next start."""
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
        _end(session, job, JobStatus.CANCELLED, "cancelled", utcnow())
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
            _end(session, job, JobStatus.CANCELLED, "cancelled", now)
            _cancel_clips(session, job)
        else:
            job.cancel_requested = True
            add_job_log(session, job.id, "INFO", "cancel requested")
    _set_project_status(session, project_id, ProjectStatus.CANCELLED)
    return len(jobs)


def _end(session: Session, job: Job, status: JobStatus, message: str, now: datetime) -> None:
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


def _fail_clips(session: Session, job: Job, message: str) -> None:
    if job.job_type != JobType.GENERATE:
        return
    for clip in session.scalars(select(Clip).where(Clip.id.in_(job.input_clip_ids))):
        clip.clip_status = ClipStatus.FAILED
        clip.error_message = message


def _cancel_clips(session: Session, job: Job) -> None:
    if job.job_type != JobType.GENERATE:
        return
    for clip in session.scalars(select(Clip).where(Clip.id.in_(job.input_clip_ids))):
        if clip.clip_status in (ClipStatus.QUEUED, ClipStatus.GENERATING):
            clip.clip_status = ClipStatus.CANCELLED


def _set_project_status(session: Session, project_id: str, status: ProjectStatus) -> None:
    project = session.get(Project, project_id)
    if project is not None:
        project.project_status = status


def record_outputs(
    database: Database, job_id: str, worker_id: str, outputs: dict[str, str]
) -> bool:
    """Remember the final paths before files are renamed into place, so a worker that dies
    between the rename and ``complete_*`` finds them instead of leaving orphans."""
    with database.session() as session:
        job = _owned(session, job_id, worker_id)
        if job is None:
            return False
        job.job_settings = {**job.job_settings, "outputs": outputs}
        return True


def job_settings(database: Database, job_id: str) -> dict[str, Any]:
    with database.session() as session:
        return dict(session.get_one(Job, job_id).job_settings)


def note_waiting(database: Database, runs_on: RunsOn, reason: str) -> None:
    """Show queued jobs of this kind why they wait (replacing only a plain or older wait note)."""
    with database.session() as session:
        session.execute(
            update(Job)
            .where(
                Job.job_status == JobStatus.QUEUED,
                Job.runs_on == runs_on,
                or_(Job.current_stage == "queued", Job.current_stage.like("waiting for ComfyUI%")),
                Job.current_stage != reason,
            )
            .values(current_stage=reason[:255])
        )


@dataclass(frozen=True, slots=True)
class ClipFile:
    clip_id: str
    clip_name: str
    file_path: str | None


def clip_files(database: Database, clip_ids: Sequence[str]) -> list[ClipFile]:
    """The files of these clips, in the order given."""
    with database.session() as session:
        rows = {c.id: c for c in session.scalars(select(Clip).where(Clip.id.in_(clip_ids)))}
    return [
        ClipFile(clip_id, rows[clip_id].clip_name, rows[clip_id].file_path)
        for clip_id in clip_ids
        if clip_id in rows
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
