"""Recording an accepted manifest: project, clips, jobs and the Manifest row in one transaction,
by DESIGN's build-system rule.

A clip whose settingsHash matches an existing clip of the project keeps that clip (and its video);
a clip with no seed matches an existing clip whose other settings are equal and keeps its seed.
Changed and failed clips get new generate jobs, clips left out are ``removed``, and every
manifest that changes anything gets one export job; one that changes nothing queues nothing.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from sqlalchemy import or_, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from vidgen.db.counters import next_index_in
from vidgen.db.jobs import (
    PENDING_CLIPS,
    add_export_job,
    add_generate_job,
    cancel_project,
    remove_clip,
    reopen_project,
    retry_clip,
    reuse_clip,
    set_project_priority,
)
from vidgen.db.models import (
    Clip,
    ClipStatus,
    Job,
    JobLog,
    JobStatus,
    JobType,
    Manifest,
    ManifestStatus,
    Project,
    RunsOn,
    new_id,
)
from vidgen.db.session import Database, insert_new_in_bulk
from vidgen.errors import DatabaseUnavailable, ManifestError, Problem
from vidgen.naming import FileType, first_free_path
from vidgen.specs import (
    ClipSpec,
    ExportRequest,
    GenerateRequest,
    GenerationMode,
    Priority,
    SheetSpec,
    Variation,
    clip_spec_as_manifest,
)

_TRIES = 3
_KEPT = (ClipStatus.READY, ClipStatus.QUEUED, ClipStatus.GENERATING)
_LIVE_JOBS = (JobStatus.QUEUED, JobStatus.ACTIVE)


@dataclass(frozen=True, slots=True)
class PlannedClip:
    """One clip of the manifest, in order, with its reference files already in storage."""

    spec: ClipSpec
    seed: int | None  # None: keep a matching clip's seed, else draw one
    runs_on: RunsOn
    settings_hash: Callable[[int], str]  # the clip's settingsHash with the given seed
    variation: Variation | None = None  # one of a clip's variations (contact sheet, pick)


@dataclass(frozen=True, slots=True)
class ManifestRecord:
    manifest_id: str
    project_name: str
    display_name: str
    description: str
    resolution: str
    frame_rate: int
    outbox: str
    source_path: str
    stored_folder: str  # the manifest is named there, in the recording transaction
    stored_extension: str
    content_hash: str
    clips: tuple[PlannedClip, ...]
    export: ExportRequest  # what the export job is asked to make
    priority: Priority | None  # None: new jobs are normal, waiting ones keep theirs
    resolved: dict[str, Any]  # the resolved manifest; its "clips" are filled in here


@dataclass(frozen=True, slots=True)
class RecordOutcome:
    project_id: str
    clip_ids: tuple[str, ...]
    generate_job_ids: tuple[str, ...]
    export_job_id: str | None  # None: nothing changed, nothing queued
    stored_path: str = ""
    resolved: dict[str, Any] = field(default_factory=dict)


def record_manifest(
    database: Database, record: ManifestRecord, draw_seed: Callable[[], int]
) -> RecordOutcome:
    """One transaction; a project created by another intake at the same moment is retried."""
    for attempt in range(_TRIES):
        try:
            with database.session() as session:
                return _record(session, record, draw_seed, lock=database.is_mysql)
        except IntegrityError:
            if attempt == _TRIES - 1:
                raise
    raise DatabaseUnavailable("recording the manifest kept colliding")  # pragma: no cover


def manifest_recorded(database: Database, manifest_id: str) -> bool:
    """Whether the Manifest row exists: the commit point of intake."""
    with database.session() as session:
        return session.get(Manifest, manifest_id) is not None


def stored_path_of(database: Database, manifest_id: str) -> tuple[str | None, dict[str, Any]]:
    """Where a recorded manifest goes in storage, and its resolved form."""
    with database.session() as session:
        row = session.get_one(Manifest, manifest_id)
        return row.stored_path, dict(row.resolved_manifest or {})


def _record(
    session: Session, record: ManifestRecord, draw_seed: Callable[[], int], *, lock: bool
) -> RecordOutcome:
    # Named in this transaction (one commit per manifest, not two), and first: its UPDATE
    # would otherwise flush every row added so far in a round of its own.
    stored_path = first_free_path(
        lambda: next_index_in(session, record.project_name, FileType.MANIFEST.value),
        Path(record.stored_folder),
        record.project_name,
        FileType.MANIFEST,
        record.stored_extension,
    )
    project, created = _project(session, record, lock=lock)
    existing = (
        [] if created else list(session.scalars(select(Clip).where(Clip.project_id == project.id)))
    )
    before = [c.id for c in sorted(_active(existing), key=lambda c: c.order_index)]
    unused = _active(existing) + [
        c for c in existing if c.clip_status == ClipStatus.REMOVED and c.file_path
    ]
    if record.priority is not None and not created:
        set_project_priority(session, project.id, record.priority)
    priority = record.priority or Priority.NORMAL
    clips: list[Clip] = []
    specs: list[ClipSpec] = []
    new_jobs: list[str] = []
    made_by: dict[str, str] = {}  # clip id → its new generate job
    for index, planned in enumerate(record.clips):
        if planned.variation is not None and planned.variation.shares_seed:
            planned = replace(planned, seed=specs[planned.variation.first].seed)
        clip, spec, job_id = _place(session, project.id, planned, unused, draw_seed, priority)
        clip.order_index = index
        clip.clip_name = planned.spec.clip_name[:200]
        clips.append(clip)
        specs.append(spec)
        if job_id:
            new_jobs.append(job_id)
            made_by[clip.id] = job_id
    for left_out in _active(unused):
        remove_clip(left_out)
    resolved = {**record.resolved, "clips": [clip_spec_as_manifest(s) for s in specs]}
    clip_ids = [c.id for c in clips]
    export_ids, request = _export_inputs(record, clip_ids, specs)
    export_id = None
    # A new project needs no look at older jobs: everything in it is new (saves round trips).
    if (
        created
        or new_jobs
        or before != clip_ids
        or _export_differs(session, project.id, request, export_ids)
    ):
        reopen_project(project)
        live = [] if created else _live_generate_jobs(session, project.id, set(export_ids))
        made = [made_by[c] for c in export_ids if c in made_by]
        waits_for = list(dict.fromkeys(made + live))
        by_id = {c.id: c for c in clips}
        pending = any(by_id[c].clip_status in PENDING_CLIPS for c in export_ids if c in by_id)
        export_id = add_export_job(
            session,
            project.id,
            export_ids,
            request,
            waits_for,
            priority,
            waits_for_clips=pending,
        ).id
    session.add(_manifest_row(record, project.id, resolved, str(stored_path)))
    insert_new_in_bulk(session, (Project, Clip, Job, JobLog, Manifest))
    return RecordOutcome(
        project.id, tuple(clip_ids), tuple(new_jobs), export_id, str(stored_path), resolved
    )


def _active(clips: Sequence[Clip]) -> list[Clip]:
    return [c for c in clips if c.clip_status != ClipStatus.REMOVED]


def _project(session: Session, record: ManifestRecord, *, lock: bool) -> tuple[Project, bool]:
    """The project row, locked against a concurrent intake, and whether it was created now."""
    query = select(Project).where(Project.project_name == record.project_name)
    if lock:
        query = query.with_for_update()
    project = session.scalars(query).one_or_none()
    created = project is None
    if project is None:
        project = Project(id=new_id(), project_name=record.project_name)
        session.add(project)
    project.display_name = record.display_name[:200]
    project.description = record.description
    project.resolution = record.resolution
    project.frame_rate = record.frame_rate
    project.outbox_path = record.outbox
    return project, created


def _place(
    session: Session,
    project_id: str,
    planned: PlannedClip,
    unused: list[Clip],
    draw_seed: Callable[[], int],
    priority: Priority,
) -> tuple[Clip, ClipSpec, str | None]:
    """The clip row for ``planned`` and its resolved spec: a matching clip kept (or tried
    again), else a new one; the id of its new generate job, if it needs one."""
    match = None if planned.spec.regenerate else _match(planned, unused)
    if match is not None:
        unused.remove(match)
        spec = replace(planned.spec, seed=match.seed_value)
        if match.clip_status in (ClipStatus.READY, ClipStatus.REMOVED) and match.file_path:
            reuse_clip(match)
            return match, spec, None
        if match.clip_status in _KEPT:
            return match, spec, None
        # A failed or cancelled clip is tried again, in place.
        retry_clip(match)
        return match, spec, _generate_job(session, project_id, match, spec, planned, priority)
    seed = planned.seed
    if seed is None:
        seed = 0 if planned.spec.mode is GenerationMode.IMPORTED else draw_seed()
    spec = replace(planned.spec, seed=seed)
    clip = _new_clip(spec, project_id, planned.settings_hash(seed))
    session.add(clip)  # inserted by the generate job's flush; its id is set here already
    return clip, spec, _generate_job(session, project_id, clip, spec, planned, priority)


def _match(planned: PlannedClip, candidates: Sequence[Clip]) -> Clip | None:
    for candidate in candidates:
        if candidate.generation_mode != planned.spec.mode:
            continue
        if planned.seed is not None and candidate.seed_value != planned.seed:
            continue
        if planned.settings_hash(candidate.seed_value) == candidate.settings_hash:
            return candidate
    return None


def _generate_job(
    session: Session,
    project_id: str,
    clip: Clip,
    spec: ClipSpec,
    planned: PlannedClip,
    priority: Priority,
) -> str:
    request = GenerateRequest(spec)
    return add_generate_job(session, project_id, clip.id, request, planned.runs_on, priority).id


def _new_clip(spec: ClipSpec, project_id: str, settings_hash: str) -> Clip:
    image_to_video = spec.mode is GenerationMode.IMAGE_TO_VIDEO
    return Clip(
        id=new_id(),
        project_id=project_id,
        clip_name=spec.clip_name[:200],
        order_index=0,
        generation_mode=spec.mode.value,
        prompt=spec.prompt,
        negative_prompt=spec.negative_prompt,
        seed_value=spec.seed,
        steps_count=spec.steps,
        cfg_scale=spec.cfg,
        frame_count=spec.frames,
        width=spec.width,
        height=spec.height,
        checkpoint=spec.checkpoint,
        motion_module=spec.motion_module,
        reference_image=spec.reference_image or spec.video,
        ip_adapter_weight=spec.ip_adapter_weight if image_to_video else None,
        settings_hash=settings_hash,
        clip_status=ClipStatus.QUEUED,
    )


def _export_inputs(
    record: ManifestRecord, clip_ids: Sequence[str], specs: Sequence[ClipSpec]
) -> tuple[list[str], ExportRequest]:
    """The export job's input clips and request: the played clips in order (of a clip's
    variations the picked one, else the first), then the variations only a contact sheet
    shows; a clip with variations and no pick gets a sheet.

    Raises:
        ManifestError: ``pick`` names a seed that none of the clip's variations has.
    """
    planned = record.clips
    picked = {
        p.variation.first: _picked(p.variation, specs) for p in planned if p.variation is not None
    }
    played = [
        clip_ids[i]
        for i, p in enumerate(planned)
        if p.variation is None or picked[p.variation.first] == p.variation.number
    ]
    shown: list[str] = []
    sheets: list[SheetSpec] = []
    for first in picked:
        lead = planned[first].variation
        if lead is None or lead.pick is not None:
            continue
        positions = []
        for i in range(first, first + lead.count):
            if clip_ids[i] in played:
                positions.append(played.index(clip_ids[i]))
            else:
                positions.append(len(played) + len(shown))
                shown.append(clip_ids[i])
        sheets.append(SheetSpec(tuple(positions), lead.keys))
    if not sheets:
        return played, record.export
    return played + shown, replace(record.export, joined=len(played), sheets=tuple(sheets))


def _picked(variation: Variation, specs: Sequence[ClipSpec]) -> int:
    """The number of the variation the export plays."""
    pick = variation.pick
    if pick is None:
        return 1
    if pick.number is not None:
        return pick.number
    members = range(variation.first, variation.first + variation.count)
    for i in members:
        if specs[i].seed == pick.seed:
            return i - variation.first + 1
    seeds = ", ".join(str(specs[i].seed) for i in members)
    message = f"no variation has seed {pick.seed}; their seeds are {seeds}"
    raise ManifestError([Problem(pick.path, pick.line, message)])


def _export_differs(
    session: Session, project_id: str, request: ExportRequest, clip_ids: Sequence[str]
) -> bool:
    """A new export unless the last one made (or is making) exactly this."""
    last = session.scalars(
        select(Job)
        .where(Job.project_id == project_id, Job.job_type == JobType.EXPORT)
        .order_by(Job.created_at.desc(), Job.id)
        .limit(1)
    ).one_or_none()
    if last is None or last.job_status in (JobStatus.FAILED, JobStatus.CANCELLED):
        return True
    same_clips = list(last.input_clip_ids) == list(clip_ids)
    return not same_clips or ExportRequest.from_json(last.job_settings) != request


def _live_generate_jobs(session: Session, project_id: str, clip_ids: set[str]) -> list[str]:
    jobs = session.scalars(
        select(Job).where(
            Job.project_id == project_id,
            Job.job_type == JobType.GENERATE,
            Job.job_status.in_(_LIVE_JOBS),
        )
    )
    return [job.id for job in jobs if clip_ids & set(job.input_clip_ids)]


def _manifest_row(
    record: ManifestRecord, project_id: str, resolved: dict[str, Any], stored_path: str
) -> Manifest:
    return Manifest(
        id=record.manifest_id,
        project_id=project_id,
        source_path=record.source_path[:1024],
        stored_path=stored_path,
        content_hash=record.content_hash,
        status=ManifestStatus.ACCEPTED,
        errors=[],
        resolved_manifest=resolved,
    )


@dataclass(frozen=True, slots=True)
class ProjectTarget:
    project_id: str
    project_name: str


def find_project_target(database: Database, target: str, derived_name: str) -> ProjectTarget | None:
    """The project ``cancel: target`` (or ``project:`` beside ``priority``) means: by
    projectName, display name, or a job's id."""
    with database.session() as session:
        project = session.scalars(
            select(Project).where(
                or_(
                    Project.project_name == target,
                    Project.project_name == derived_name,
                    Project.display_name == target,
                )
            )
        ).first()
        if project is None:
            job = session.get(Job, target)
            project = session.get(Project, job.project_id) if job is not None else None
        return None if project is None else ProjectTarget(project.id, project.project_name)


@dataclass(frozen=True, slots=True)
class RequestFile:
    """A manifest that only asks something of a project (``cancel``, ``priority``): where it
    came from and where it is kept."""

    manifest_id: str
    source_path: str
    stored_path: str
    content_hash: str


def record_cancel(database: Database, target: ProjectTarget, file: RequestFile) -> int:
    """Cancel the project's jobs and record the cancel manifest, in one transaction."""
    with database.session() as session:
        count = cancel_project(database, target.project_id, session)
        resolved = {"cancel": target.project_name}
        session.add(_request_row(target, file, ManifestStatus.CANCEL, resolved))
        return count


def record_priority(
    database: Database, target: ProjectTarget, priority: Priority, file: RequestFile
) -> int:
    """Move the project's waiting jobs to ``priority`` and record the manifest that asked, in
    one transaction; returns how many jobs moved."""
    with database.session() as session:
        count = set_project_priority(session, target.project_id, priority)
        resolved = {"priority": priority.word, "projectName": target.project_name}
        session.add(_request_row(target, file, ManifestStatus.PRIORITY, resolved))
        return count


def _request_row(
    target: ProjectTarget, file: RequestFile, status: ManifestStatus, resolved: dict[str, Any]
) -> Manifest:
    return Manifest(
        id=file.manifest_id,
        project_id=target.project_id,
        source_path=file.source_path[:1024],
        stored_path=file.stored_path,
        content_hash=file.content_hash,
        status=status,
        errors=[],
        resolved_manifest=resolved,
    )


__all__ = [
    "ManifestRecord",
    "PlannedClip",
    "ProjectTarget",
    "RecordOutcome",
    "RequestFile",
    "find_project_target",
    "manifest_recorded",
    "record_cancel",
    "record_manifest",
    "record_priority",
    "stored_path_of",
]
