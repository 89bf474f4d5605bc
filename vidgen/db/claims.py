"""Claiming the next job: one transaction that takes a runnable job for a worker and leases it.

Claims use ``FOR UPDATE SKIP LOCKED`` on MariaDB, so several workers (and hosts) never take the
same job; SQLite has one writer at a time, and the claim re-checks the row under that lock (a
compare-and-set on its status and attempts).
"""

from __future__ import annotations

from datetime import datetime, timedelta

from sqlalchemy import ColumnElement, or_, select, update
from sqlalchemy.orm import Session

from vidgen.db.jobs import (
    ClaimedJob,
    add_job_log,
    end_job,
    fail_clips,
    request_of,
    set_project_status,
)
from vidgen.db.models import (
    Clip,
    ClipStatus,
    Job,
    JobStatus,
    JobType,
    Project,
    ProjectStatus,
    RunsOn,
)
from vidgen.db.queries import sent_prompts
from vidgen.db.session import Database
from vidgen.db.types import utcnow
from vidgen.specs import JobOutputs

# Rows read per round of the walk; the ones it settles (cancelled, out of tries) drop out.
_BATCH = 20
_ENDED = (JobStatus.COMPLETED, JobStatus.FAILED, JobStatus.CANCELLED)


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
    """Take the next runnable job of this worker's kind, highest priority first, then oldest:
    queued (and due), or abandoned by a worker whose lease ran out. The query leaves out what
    cannot run yet (exports waiting for clips, ``release_exports``; prompts another backend
    holds), so no number of those hides a job that can run."""
    now = utcnow()
    with database.session() as session:
        query = (
            select(Job)
            .where(Job.runs_on == runs_on)
            .where(
                or_(
                    (Job.job_status == JobStatus.QUEUED)
                    & or_(Job.not_before.is_(None), Job.not_before <= now),
                    (Job.job_status == JobStatus.ACTIVE)
                    & (Job.lease_expires_at < now)
                    & _collectable_by(backend),
                )
            )
            .where(Job.waits_for_clips.is_(False))
            .order_by(Job.priority.desc(), Job.created_at, Job.id)
            .limit(_BATCH)
        )
        if database.is_mysql:
            query = query.with_for_update(skip_locked=True)
        while True:
            candidates = list(session.scalars(query))
            runnable = [
                job
                for job in candidates
                if _runnable(session, job, max_attempts=max_attempts, now=now)
            ]
            settled = [j for j in candidates if j.job_status in _ENDED or j.waits_for_clips]
            if runnable or len(candidates) < _BATCH or not settled:
                break
            session.flush()  # the settled rows no longer match: the next round reads on
        if not runnable:
            return None
        job = _pick(runnable, prefer_checkpoint)
        if not _take(session, job, worker_id, lease_seconds, now):
            return None
        project_name = session.get_one(Project, job.project_id).project_name
        _mark_clip_generating(session, job)
        return _snapshot(session, job, project_name, worker_id)


def _collectable_by(backend: str | None) -> ColumnElement[bool]:
    """An abandoned job whose prompt sits in a backend's queue: only that backend's worker
    collects it without running the prompt twice."""
    return or_(Job.comfy_backend.is_(None), Job.comfy_backend == backend)


def _runnable(session: Session, job: Job, *, max_attempts: int, now: datetime) -> bool:
    """Settle the jobs that can no longer run (cancelled, out of tries, failed inputs)."""
    if job.cancel_requested:
        end_job(session, job, JobStatus.CANCELLED, "cancelled", now)
        return False
    if job.job_status == JobStatus.ACTIVE:
        lapsed = f"worker {job.worker_id} stopped renewing its lease"
        add_job_log(session, job.id, "WARNING", lapsed)
        if job.attempts >= max_attempts:
            message = f"gave up after {job.attempts} attempts: its worker kept stopping"
            end_job(session, job, JobStatus.FAILED, message, now)
            fail_clips(session, job, message)
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
            end_job(session, job, JobStatus.FAILED, message, now)
            set_project_status(session, job.project_id, ProjectStatus.FAILED)
            return False
    if all(clips[c].clip_status == ClipStatus.READY for c in job.input_clip_ids):
        return True
    # A clip is being made again (a newer manifest retried it): wait for it out of the walk.
    job.waits_for_clips = True
    return False


def _pick(runnable: list[Job], prefer_checkpoint: str | None) -> Job:
    # Clips sharing a checkpoint run back to back (ComfyUI keeps it loaded), within the
    # highest priority waiting.
    if prefer_checkpoint:
        top = runnable[0].priority
        for job in (j for j in runnable if j.priority == top):
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


def _snapshot(session: Session, job: Job, project_name: str, worker_id: str) -> ClaimedJob:
    return ClaimedJob(
        id=job.id,
        project_id=job.project_id,
        project_name=project_name,
        job_type=JobType(job.job_type),
        request=request_of(job),
        input_clip_ids=tuple(job.input_clip_ids),
        attempts=job.attempts,
        worker_id=worker_id,
        outputs=JobOutputs.from_json(job.job_outputs),
        prompts=sent_prompts(session, job.id),
    )
