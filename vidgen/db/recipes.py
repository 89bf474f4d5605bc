"""What an export's recipe is made of, read in one session: the project, the export's request,
each input clip as its generate job asked for it (seed drawn, full model names) with its
timings and ComfyUI prompts, and the paths the manifests wrote for reference files."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from pathlib import PurePath

from sqlalchemy import select
from sqlalchemy.orm import Session

from vidgen.db.models import Clip, Job, JobStatus, JobType, Manifest, ManifestStatus, Project
from vidgen.db.queries import SentPrompt, sent_prompts
from vidgen.db.session import Database
from vidgen.specs import ClipSpec, ExportRequest, GenerateRequest, GenerationMode


@dataclass(frozen=True, slots=True)
class JobTimes:
    started_at: datetime | None
    completed_at: datetime | None
    attempts: int
    prompts: tuple[SentPrompt, ...]


@dataclass(frozen=True, slots=True)
class ClipFacts:
    spec: ClipSpec  # the clip's own name and seed, as the export used it
    made_by: JobTimes | None  # the generate job that made its video; None for an older clip


@dataclass(frozen=True, slots=True)
class ExportFacts:
    job_id: str
    project_name: str
    display_name: str
    description: str
    request: ExportRequest
    clips: tuple[ClipFacts, ...]
    export: JobTimes
    # A stored reference's file name → the path a manifest wrote for it (``refs/girl.png``).
    sources: Mapping[str, str]


def export_facts(database: Database, job_id: str) -> ExportFacts:
    with database.session() as session:
        job = session.get_one(Job, job_id)
        project = session.get_one(Project, job.project_id)
        makers = _generate_jobs(session, job.project_id)
        request = ExportRequest.from_json(job.job_settings)
        played = request.played(job.input_clip_ids)  # not the variations only a sheet shows
        clips = {c.id: c for c in session.scalars(select(Clip).where(Clip.id.in_(played)))}
        return ExportFacts(
            job_id=job.id,
            project_name=project.project_name,
            display_name=project.display_name,
            description=project.description,
            request=request,
            clips=tuple(
                _clip_facts(session, clips[i], makers.get(i)) for i in played if i in clips
            ),
            export=_times(session, job),
            sources=_sources(session, job.project_id),
        )


def _generate_jobs(session: Session, project_id: str) -> dict[str, Job]:
    """Each clip's newest generate job, a completed one before any other."""
    jobs = session.scalars(
        select(Job)
        .where(Job.project_id == project_id, Job.job_type == JobType.GENERATE)
        .order_by(Job.created_at, Job.id)
    )
    found: dict[str, Job] = {}
    for job in jobs:
        clip_id = job.input_clip_ids[0]
        kept = found.get(clip_id)
        if (
            kept is None
            or job.job_status == JobStatus.COMPLETED
            or kept.job_status != JobStatus.COMPLETED
        ):
            found[clip_id] = job
    return found


def _clip_facts(session: Session, clip: Clip, maker: Job | None) -> ClipFacts:
    if maker is not None:
        spec = GenerateRequest.from_json(maker.job_settings).clip
        times: JobTimes | None = _times(session, maker)
    else:  # made before requests were kept whole: what its row says
        spec = _spec_of_row(clip)
        times = None
    spec = ClipSpec.from_json(
        {**spec.to_json(), "clip_name": clip.clip_name, "seed": clip.seed_value}
    )
    return ClipFacts(spec, times)


def _spec_of_row(clip: Clip) -> ClipSpec:
    mode = GenerationMode(clip.generation_mode)
    return ClipSpec(
        clip_name=clip.clip_name,
        mode=mode,
        prompt=clip.prompt,
        negative_prompt=clip.negative_prompt,
        seed=clip.seed_value,
        steps=clip.steps_count,
        cfg=clip.cfg_scale,
        frames=clip.frame_count,
        width=clip.width,
        height=clip.height,
        checkpoint=clip.checkpoint,
        motion_module=clip.motion_module,
        ip_adapter_weight=clip.ip_adapter_weight or 0.0,
        reference_image=clip.reference_image if mode is GenerationMode.IMAGE_TO_VIDEO else None,
        video=(clip.reference_image or clip.file_path) if mode is GenerationMode.IMPORTED else None,
    )


def _times(session: Session, job: Job) -> JobTimes:
    return JobTimes(job.started_at, job.completed_at, job.attempts, sent_prompts(session, job.id))


def _sources(session: Session, project_id: str) -> dict[str, str]:
    manifests = session.scalars(
        select(Manifest)
        .where(Manifest.project_id == project_id, Manifest.status == ManifestStatus.ACCEPTED)
        .order_by(Manifest.received_at, Manifest.id)
    )
    found: dict[str, str] = {}
    for manifest in manifests:  # oldest first: the newest mention wins
        resolved = manifest.resolved_manifest or {}
        for clip, source in zip(
            resolved.get("clips", []), resolved.get("sources", []), strict=False
        ):
            stored = clip.get("image") or clip.get("video")
            if stored and source:
                found[PurePath(str(stored)).name] = str(source)
    return found
