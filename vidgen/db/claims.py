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
)
from vidgen.db.models import (
    Clip,
    ClipStatus,
    Job,
    JobStatus,
    JobType,
    Project,
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
    backend_takeover_seconds: float = 0.0,
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
                    & _collectable_by(backend, backend_takeover_seconds, now),
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


def _collectable_by(
    backend: str | None, takeover_seconds: float, now: datetime
) -> ColumnElement[bool]:
    """An abandoned job whose prompts were sent to a backend waits for that backend's worker (a
    restarted one collects them best). Past ``takeover_seconds`` after its lease ran out, its
    worker counts as gone: any backend's worker may finish the job, collecting what the
    original backend still has (stages/prompts.py) and making the rest anew."""
    return or_(
        Job.comfy_backend.is_(None),
        Job.comfy_backend == backend,
        Job.lease_expires_at < now - timedelta(seconds=takeover_seconds),
    )


def _runnable(session: Session, job: Job, *, max_attempts: int, now: datetime) -> bool:
    """Settle the jobs that can no longer run (cancelled, out of tries); an export runs once no
    clip is being made (one that failed is failed on a worker, which reports it)."""
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
        return _inputs_ready(session, job)
    return True


def _inputs_ready(session: Session, job: Job) -> bool:
    """Every clip ready, or one that will never be: then the export is taken only to fail on a
    worker, which writes its report into the outbox (stages/export.py)."""
    clips = {c.id: c for c in session.scalars(select(Clip).where(Clip.id.in_(job.input_clip_ids)))}
    statuses = [clips[c].clip_status if c in clips else None for c in job.input_clip_ids]
    if any(s in (None, ClipStatus.FAILED, ClipStatus.CANCELLED) for s in statuses):
        return True
    if all(s == ClipStatus.READY for s in statuses):
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
