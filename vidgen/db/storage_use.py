"""What storage holds that the database still needs, for ``vidgen gc``: which jobs are live
(their inputs and work folders stay), when the others ended, and the clips marked removed whose
files may go. Forgetting a removed clip's files is one transaction that re-checks everything."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from vidgen.db.models import Clip, ClipStatus, Job, JobStatus, Project
from vidgen.db.session import Database

_LIVE = (JobStatus.QUEUED, JobStatus.ACTIVE)


@dataclass(frozen=True, slots=True)
class EndedJob:
    job_type: str
    ended_at: datetime


@dataclass(frozen=True, slots=True)
class StorageUse:
    live_jobs: frozenset[str]
    ended_jobs: dict[str, EndedJob]
    removed_clips: tuple[str, ...]  # removed, with files, used by no live job


def storage_use(database: Database) -> StorageUse:
    with database.session() as session:
        jobs = session.execute(
            select(
                Job.id,
                Job.job_type,
                Job.job_status,
                Job.input_clip_ids,
                Job.completed_at,
                Job.updated_at,
            )
        ).all()
        in_use = {c for job in jobs if job.job_status in _LIVE for c in job.input_clip_ids}
        removed = session.scalars(
            select(Clip.id).where(
                Clip.clip_status == ClipStatus.REMOVED,
                Clip.file_path.is_not(None) | Clip.thumbnail_path.is_not(None),
            )
        ).all()
    return StorageUse(
        live_jobs=frozenset(j.id for j in jobs if j.job_status in _LIVE),
        ended_jobs={
            j.id: EndedJob(j.job_type, j.completed_at or j.updated_at)
            for j in jobs
            if j.job_status not in _LIVE
        },
        removed_clips=tuple(c for c in removed if c not in in_use),
    )


def forget_clip_files(database: Database, clip_id: str) -> tuple[str, ...]:
    """If the clip is still removed and no live job uses it, clear its file and thumbnail in the
    database and return their paths (the caller deletes the files); nothing otherwise. A path
    another clip still names is kept."""
    with database.session() as session:
        clip = session.get(Clip, clip_id)
        if clip is None or clip.clip_status != ClipStatus.REMOVED:
            return ()
        if database.is_mysql:  # intake locks the project row too: a manifest being recorded now
            session.get(Project, clip.project_id, with_for_update=True)  # may bring it back
        paths = tuple(p for p in (clip.file_path, clip.thumbnail_path) if p)
        # The write first: on SQLite it takes the lock, so the checks below see intake's commits.
        taken = session.execute(
            update(Clip)
            .where(Clip.id == clip_id, Clip.clip_status == ClipStatus.REMOVED)
            .values(file_path=None, file_name=None, thumbnail_path=None, thumbnail_name=None)
            .execution_options(synchronize_session=False)
        )
        if taken.rowcount != 1 or _used_by_live_job(session, clip_id):  # type: ignore[attr-defined]
            session.rollback()
            return ()
        shared = session.scalars(
            select(Clip.file_path).where(Clip.id != clip_id, Clip.file_path.in_(paths))
        ).all()
        thumbnails = session.scalars(
            select(Clip.thumbnail_path).where(Clip.id != clip_id, Clip.thumbnail_path.in_(paths))
        ).all()
        return tuple(p for p in paths if p not in {*shared, *thumbnails})


def _used_by_live_job(session: Session, clip_id: str) -> bool:
    inputs = session.scalars(select(Job.input_clip_ids).where(Job.job_status.in_(_LIVE))).all()
    return any(clip_id in ids for ids in inputs)


__all__ = ["EndedJob", "StorageUse", "forget_clip_files", "storage_use"]
