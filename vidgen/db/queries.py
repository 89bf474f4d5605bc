"""Read functions for the status page and ``vidgen jobs``: one call per view, nothing ever written.

Each function opens one short session and returns frozen dataclasses (never ORM objects), so a
template or a JSON encoder can use the result after the session is gone.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import PurePath
from typing import Any

from sqlalchemy import Row, Select, func, select
from sqlalchemy.orm import Session

from vidgen.db.models import (
    Clip,
    ClipStatus,
    ComfyPrompt,
    Job,
    JobLog,
    JobStatus,
    JobType,
    Manifest,
    Project,
)
from vidgen.db.session import Database
from vidgen.specs import ExportRequest, JobOutputs, OutputFormat, Priority

__all__ = [
    "ClipView",
    "JobDetail",
    "JobPage",
    "JobSummary",
    "LiveJobs",
    "LogLine",
    "ManifestView",
    "OutputView",
    "ProjectDetail",
    "ProjectSummary",
    "SentPrompt",
    "changes_since",
    "get_job",
    "get_project",
    "latest_job_update",
    "list_jobs",
    "list_live_jobs",
    "list_projects",
    "sent_prompts",
    "status_counts",
]

MAX_PER_PAGE = 200
LIVE_STATUSES = (JobStatus.QUEUED, JobStatus.ACTIVE)
_PROJECT_JOBS_SHOWN = 50


@dataclass(frozen=True, slots=True)
class JobSummary:
    """One job as the lists and the live feed show it."""

    id: str
    project_name: str
    display_name: str
    job_type: str
    job_status: str
    priority: str  # "high", "normal" or "low"
    progress_percent: float
    current_stage: str
    error_message: str | None
    attempts: int
    clip_ids: tuple[str, ...]
    output_file_name: str | None
    created_at: datetime
    updated_at: datetime
    started_at: datetime | None
    completed_at: datetime | None


@dataclass(frozen=True, slots=True)
class JobPage:
    """One page of jobs, newest first, with the counts per status over every job."""

    jobs: list[JobSummary]
    page: int
    per_page: int
    total: int
    status_counts: dict[str, int]

    @property
    def pages(self) -> int:
        return max(1, -(-self.total // self.per_page))


@dataclass(frozen=True, slots=True)
class LiveJobs:
    """The most recently changed live (queued or active) jobs, how many are live in all, and
    the counts per status over every job."""

    jobs: list[JobSummary]
    live_total: int
    status_counts: dict[str, int]


@dataclass(frozen=True, slots=True)
class LogLine:
    level: str
    message: str
    created_at: datetime


@dataclass(frozen=True, slots=True)
class SentPrompt:
    """A ComfyUI prompt a job recorded (and then sent) for one of its steps."""

    step: str
    prompt_id: str
    backend: str
    graph: dict[str, Any]


@dataclass(frozen=True, slots=True)
class JobDetail:
    """A job with its log and what it was asked to do (settings, the ComfyUI graphs sent)."""

    job: JobSummary
    logs: list[LogLine]
    job_settings: dict[str, Any]
    depends_on: list[str]
    worker_id: str | None
    comfy_backend: str | None
    output_path: str | None
    prompts: tuple[SentPrompt, ...]  # each with its graph, exactly as sent


@dataclass(frozen=True, slots=True)
class ProjectSummary:
    name: str
    display_name: str
    description: str
    status: str
    resolution: str
    frame_rate: int
    clip_count: int
    created_at: datetime
    updated_at: datetime


@dataclass(frozen=True, slots=True)
class ClipView:
    """A clip with the progress of the job generating it, if one is running."""

    id: str
    clip_name: str
    order_index: int
    mode: str
    prompt: str
    negative_prompt: str
    seed: int
    steps: int
    cfg: float
    frames: int
    width: int
    height: int
    checkpoint: str
    duration_sec: float | None
    status: str
    error_message: str | None
    file_path: str | None
    thumbnail_path: str | None
    reference_image: str | None
    job_id: str | None = None
    progress_percent: float | None = None
    current_stage: str | None = None


@dataclass(frozen=True, slots=True)
class ManifestView:
    id: str
    file_name: str
    stored_path: str | None
    status: str
    errors: list[Any]
    resolved_manifest: dict[str, Any] | None
    received_at: datetime


@dataclass(frozen=True, slots=True)
class OutputView:
    """A finished video of the project (a completed job that wrote a file)."""

    job_id: str
    job_type: str
    file_name: str
    path: str
    output_format: str
    completed_at: datetime | None
    still: str | None = None  # a contact sheet's PNG of its middle frame


@dataclass(frozen=True, slots=True)
class ProjectDetail:
    project: ProjectSummary
    clips: list[ClipView]
    removed_clips: list[ClipView]
    manifests: list[ManifestView]
    outputs: list[OutputView]
    jobs: list[JobSummary] = field(default_factory=list)


def _summary_query() -> Select[Job, str, str]:
    return select(Job, Project.project_name, Project.display_name).join(
        Project, Project.id == Job.project_id
    )


def _summary(job: Job, project_name: str, display_name: str) -> JobSummary:
    return JobSummary(
        id=job.id,
        project_name=project_name,
        display_name=display_name,
        job_type=job.job_type,
        job_status=job.job_status,
        priority=Priority(job.priority).word,
        progress_percent=job.progress_percent,
        current_stage=job.current_stage,
        error_message=job.error_message,
        attempts=job.attempts,
        clip_ids=tuple(str(c) for c in job.input_clip_ids or ()),
        output_file_name=job.output_file_name,
        created_at=job.created_at,
        updated_at=job.updated_at,
        started_at=job.started_at,
        completed_at=job.completed_at,
    )


def _summaries(rows: Iterable[Row[Job, str, str]]) -> list[JobSummary]:
    return [_summary(job, name, display) for job, name, display in rows]


def list_jobs(database: Database, page: int = 1, per_page: int = 50) -> JobPage:
    """Every job, newest first, one page of ``per_page`` (clamped to 1..MAX_PER_PAGE)."""
    page = max(1, page)
    per_page = min(max(1, per_page), MAX_PER_PAGE)
    with database.session() as session:
        # The page's ids first, from index ix_job_created alone; then those rows with their
        # project. One joined, ordered query makes MariaDB sort every job for every page.
        ids = list(
            session.scalars(
                select(Job.id)
                .order_by(Job.created_at.desc(), Job.id.desc())
                .limit(per_page)
                .offset((page - 1) * per_page)
            )
        )
        found = {row[0].id: row for row in session.execute(_summary_query().where(Job.id.in_(ids)))}
        jobs = _summaries(found[job_id] for job_id in ids if job_id in found)
        counts = _status_counts(session)
    return JobPage(jobs, page, per_page, sum(counts.values()), counts)


def _status_counts(session: Session) -> dict[str, int]:
    """Jobs per status (index ix_job_claim, which starts with the status)."""
    rows = session.execute(select(Job.job_status, func.count()).group_by(Job.job_status))
    return {str(status): int(count) for status, count in rows}


def status_counts(database: Database) -> dict[str, int]:
    """How many jobs there are in each status."""
    with database.session() as session:
        return _status_counts(session)


def list_live_jobs(database: Database, limit: int) -> LiveJobs:
    """At most ``limit`` queued and active jobs, the most recently changed first (what a late
    SSE client most needs to catch up), with the live total and the counts per status."""
    with database.session() as session:
        rows = session.execute(
            _summary_query()
            .where(Job.job_status.in_(LIVE_STATUSES))
            .order_by(Job.updated_at.desc(), Job.id.desc())
            .limit(limit)
        )
        jobs = _summaries(rows)
        counts = _status_counts(session)
    live_total = sum(counts.get(str(status), 0) for status in LIVE_STATUSES)
    return LiveJobs(jobs, live_total, counts)


def latest_job_update(database: Database) -> datetime | None:
    """The newest ``updatedAt`` of any job: where a change feed starts reading."""
    with database.session() as session:
        return session.scalar(select(func.max(Job.updated_at)))


def changes_since(database: Database, since: datetime, limit: int = 500) -> list[JobSummary]:
    """Jobs whose ``updatedAt`` is at or after ``since``, oldest change first (index
    ``ix_job_updated``); the caller keeps the cursor and drops what it has already seen."""
    with database.session() as session:
        rows = session.execute(
            _summary_query()
            .where(Job.updated_at >= since)
            .order_by(Job.updated_at, Job.id)
            .limit(limit)
        )
        return _summaries(rows)


def get_job(database: Database, job_id: str) -> JobDetail | None:
    """A job with its log lines in the order they were written, or None."""
    with database.session() as session:
        row = session.execute(_summary_query().where(Job.id == job_id)).first()
        if row is None:
            return None
        job = row[0]
        logs = [
            LogLine(line.log_level, line.log_message, line.created_at)
            for line in session.scalars(
                select(JobLog).where(JobLog.job_id == job_id).order_by(JobLog.id)
            )
        ]
        return JobDetail(
            job=_summary(*row),
            logs=logs,
            job_settings=dict(job.job_settings or {}),
            depends_on=[str(d) for d in job.depends_on or ()],
            worker_id=job.worker_id,
            comfy_backend=job.comfy_backend,
            output_path=job.output_path,
            prompts=sent_prompts(session, job_id),
        )


def sent_prompts(session: Session, job_id: str) -> tuple[SentPrompt, ...]:
    """The prompts a job recorded, oldest first (the newest of a step is the one that counts)."""
    rows = session.scalars(
        select(ComfyPrompt)
        .where(ComfyPrompt.job_id == job_id)
        .order_by(ComfyPrompt.created_at, ComfyPrompt.id)
    )
    return tuple(SentPrompt(p.step, p.id, p.backend, dict(p.graph or {})) for p in rows)


def _project_summary(project: Project, clip_count: int) -> ProjectSummary:
    return ProjectSummary(
        name=project.project_name,
        display_name=project.display_name,
        description=project.description,
        status=project.project_status,
        resolution=project.resolution,
        frame_rate=project.frame_rate,
        clip_count=clip_count,
        created_at=project.created_at,
        updated_at=project.updated_at,
    )


def list_projects(database: Database) -> list[ProjectSummary]:
    """Every project, most recently changed first, with its number of clips (removed ones not
    counted)."""
    counts = (
        select(Clip.project_id.label("project_id"), func.count().label("clips"))
        .where(Clip.clip_status != ClipStatus.REMOVED)
        .group_by(Clip.project_id)
        .subquery()
    )
    with database.session() as session:
        rows = session.execute(
            select(Project, func.coalesce(counts.c.clips, 0))
            .outerjoin(counts, counts.c.project_id == Project.id)
            .order_by(Project.updated_at.desc(), Project.project_name)
        )
        return [_project_summary(project, int(count)) for project, count in rows]


def get_project(database: Database, project_name: str) -> ProjectDetail | None:
    """A project with its clips in playback order, manifests (newest first), outputs and its
    latest jobs, or None."""
    with database.session() as session:
        project = session.scalars(
            select(Project).where(Project.project_name == project_name)
        ).first()
        if project is None:
            return None
        jobs = list(
            session.execute(
                _summary_query()
                .where(Job.project_id == project.id)
                .order_by(Job.created_at.desc(), Job.id.desc())
            )
        )
        clips = _clip_views(session, project.id, _running_clips(jobs))
        kept = [c for c in clips if c.status != ClipStatus.REMOVED]
        return ProjectDetail(
            project=_project_summary(project, len(kept)),
            clips=kept,
            removed_clips=[c for c in clips if c.status == ClipStatus.REMOVED],
            manifests=_manifest_views(session, project.id),
            outputs=_outputs(job for job, _name, _display in jobs),
            jobs=_summaries(jobs[:_PROJECT_JOBS_SHOWN]),
        )


def _running_clips(rows: Sequence[Row[Job, str, str]]) -> dict[str, Job]:
    """Clip id -> the live generate job working on it."""
    running: dict[str, Job] = {}
    for job, _name, _display in rows:
        if job.job_type == JobType.GENERATE and job.job_status in LIVE_STATUSES:
            for clip_id in job.input_clip_ids or ():
                running.setdefault(str(clip_id), job)
    return running


def _clip_views(session: Session, project_id: str, running: dict[str, Job]) -> list[ClipView]:
    clips = session.scalars(
        select(Clip).where(Clip.project_id == project_id).order_by(Clip.order_index, Clip.id)
    )
    return [_clip_view(clip, running.get(clip.id)) for clip in clips]


def _clip_view(clip: Clip, job: Job | None) -> ClipView:
    return ClipView(
        id=clip.id,
        clip_name=clip.clip_name,
        order_index=clip.order_index,
        mode=clip.generation_mode,
        prompt=clip.prompt,
        negative_prompt=clip.negative_prompt,
        seed=clip.seed_value,
        steps=clip.steps_count,
        cfg=clip.cfg_scale,
        frames=clip.frame_count,
        width=clip.width,
        height=clip.height,
        checkpoint=clip.checkpoint,
        duration_sec=clip.duration_sec,
        status=clip.clip_status,
        error_message=clip.error_message,
        file_path=clip.file_path,
        thumbnail_path=clip.thumbnail_path,
        reference_image=clip.reference_image,
        job_id=job.id if job else None,
        progress_percent=job.progress_percent if job else None,
        current_stage=job.current_stage if job else None,
    )


def _manifest_views(session: Session, project_id: str) -> list[ManifestView]:
    manifests = session.scalars(
        select(Manifest)
        .where(Manifest.project_id == project_id)
        .order_by(Manifest.received_at.desc(), Manifest.id)
    )
    return [
        ManifestView(
            id=m.id,
            # Only the file's name: where it sat on the user's share is no business of the page.
            file_name=PurePath(m.source_path.replace("\\", "/")).name,
            stored_path=m.stored_path,
            status=m.status,
            errors=list(m.errors or ()),
            resolved_manifest=m.resolved_manifest,
            received_at=m.received_at,
        )
        for m in manifests
    ]


def _outputs(jobs: Iterable[Job]) -> list[OutputView]:
    """Each delivered export, followed by the contact sheets its job made."""
    views = []
    for job in jobs:
        if not (
            job.job_type == JobType.EXPORT
            and job.job_status == JobStatus.COMPLETED
            and job.output_path
        ):
            continue
        views.append(
            OutputView(
                job_id=job.id,
                job_type=job.job_type,
                file_name=job.output_file_name or PurePath(job.output_path).name,
                path=job.output_path,
                output_format=_output_format(job),
                completed_at=job.completed_at,
            )
        )
        views.extend(
            OutputView(
                job_id=job.id,
                job_type=job.job_type,
                file_name=PurePath(sheet).name,
                path=sheet,
                output_format=OutputFormat.MP4.value,
                completed_at=job.completed_at,
                still=str(PurePath(sheet).with_suffix(".png")),
            )
            for sheet in JobOutputs.from_json(job.job_outputs).sheets
        )
    return views


def _output_format(job: Job) -> str:
    """The export format asked for (``mp4-h265`` matters: browsers cannot play it); a clip
    delivered as it is is an MP4 whatever was asked."""
    export = ExportRequest.from_json(job.job_settings).export
    return OutputFormat.MP4.value if export.deliver_as_is else export.format.value
