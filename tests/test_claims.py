"""Which job a worker claims next, on both databases: nothing that cannot run hides what can,
higher priority first, then older, and a prompt held by another backend is left to it."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import select, update

from tests.fixtures.pipeline import placed_clip, sample_request
from vidgen.db.claims import claim_next
from vidgen.db.jobs import (
    PENDING_CLIPS,
    add_export_job,
    add_generate_job,
    complete_generate,
    fail,
)
from vidgen.db.models import Clip, ClipStatus, Job, JobStatus, Project, RunsOn
from vidgen.db.session import Database
from vidgen.db.types import utcnow
from vidgen.specs import ExportRequest, ExportSpec, Priority

_EXPORT = ExportRequest(ExportSpec(), "/outbox", 512, 512, 8)


@pytest.fixture(params=["mariadb", "sqlite"])
def either_database(
    request: pytest.FixtureRequest, database: Database, sqlite_database: Database
) -> Database:
    return database if request.param == "mariadb" else sqlite_database


def _project(database: Database, name: str) -> str:
    with database.session() as session:
        project = Project(project_name=name, display_name=name, resolution="512x512", frame_rate=8)
        session.add(project)
        session.flush()
        return project.id


def _clips(database: Database, project_id: str, status: ClipStatus, count: int = 2) -> list[str]:
    with database.session() as session:
        clips = [
            Clip(
                project_id=project_id,
                clip_name=f"clip{n + 1}",
                order_index=n,
                generation_mode="textToVideo",
                settings_hash="0" * 64,
                clip_status=status,
            )
            for n in range(count)
        ]
        session.add_all(clips)
        session.flush()
        return [clip.id for clip in clips]


def _export(database: Database, name: str, status: ClipStatus, *, flagged: bool = True) -> str:
    """A project of two clips in ``status`` and its FFmpeg-only export; returns the job id.
    ``flagged=False``: not marked as waiting for its clips, as an export queued before
    migration 0006 is."""
    project_id = _project(database, name)
    clip_ids = _clips(database, project_id, status)
    with database.session() as session:
        pending = flagged and status in PENDING_CLIPS
        return add_export_job(
            session, project_id, clip_ids, _EXPORT, [], waits_for_clips=pending
        ).id


def _claim(
    database: Database,
    runs_on: RunsOn = RunsOn.CPU,
    *,
    backend: str | None = None,
    prefer_checkpoint: str | None = None,
    takeover: float = 0.0,
) -> str | None:
    claimed = claim_next(
        database,
        "w",
        runs_on,
        lease_seconds=30,
        max_attempts=3,
        backend=backend,
        prefer_checkpoint=prefer_checkpoint,
        backend_takeover_seconds=takeover,
    )
    return None if claimed is None else claimed.id


@pytest.mark.parametrize("flagged", [True, False], ids=["marked", "queued-before-0006"])
def test_exports_waiting_for_their_clips_never_hide_one_that_can_run(
    either_database: Database, flagged: bool
) -> None:
    # Fifty projects whose clips wait for a ComfyUI that is down, then one of imported clips.
    for n in range(50):
        _export(either_database, f"waiting{n}", ClipStatus.QUEUED, flagged=flagged)
    ready = _export(either_database, "imported", ClipStatus.READY)
    assert _claim(either_database) == ready
    assert _claim(either_database) is None
    with either_database.session() as session:
        waiting = session.scalars(select(Job).where(Job.id != ready)).all()
        assert {(job.job_status, job.waits_for_clips) for job in waiting} == {
            (JobStatus.QUEUED, True)
        }


def test_the_last_clip_made_frees_its_export(either_database: Database) -> None:
    project_id = _project(either_database, "trip")
    with either_database.session() as session:
        clip_ids = _clips(either_database, project_id, ClipStatus.QUEUED)
        generate_ids = [
            add_generate_job(session, project_id, c, sample_request(), RunsOn.COMFYUI).id
            for c in clip_ids
        ]
        export = add_export_job(session, project_id, clip_ids, _EXPORT, [], waits_for_clips=True)
        export_id = export.id
    for number, generate_id in enumerate(generate_ids):
        assert _claim(either_database) is None  # a clip is still to be made
        claimed = _claim(either_database, RunsOn.COMFYUI)
        assert claimed == generate_id
        assert complete_generate(either_database, generate_id, "w", placed_clip(f"{number}.mp4"))
    assert _claim(either_database) == export_id


def test_a_failed_clip_frees_its_export_for_a_worker_to_fail(either_database: Database) -> None:
    project_id = _project(either_database, "broken")
    with either_database.session() as session:
        (clip_id,) = _clips(either_database, project_id, ClipStatus.QUEUED, count=1)
        generate = add_generate_job(session, project_id, clip_id, sample_request(), RunsOn.COMFYUI)
        add_export_job(session, project_id, [clip_id], _EXPORT, [], waits_for_clips=True)
        generate_id = generate.id
    assert _claim(either_database, RunsOn.COMFYUI) == generate_id
    fail(either_database, generate_id, "w", "ComfyUI said no")
    with either_database.session() as session:
        export_id = session.scalars(select(Job.id).where(Job.job_type == "export")).one()
    assert _claim(either_database) == export_id  # its worker fails it, writing the report


def test_an_export_whose_clip_failed_goes_to_a_worker_to_report_it(
    either_database: Database,
) -> None:
    failed = _export(either_database, "broken", ClipStatus.FAILED)
    ready = _export(either_database, "fine", ClipStatus.READY)
    assert [_claim(either_database), _claim(either_database)] == [failed, ready]


def test_many_cancelled_jobs_ahead_are_settled_in_one_claim(either_database: Database) -> None:
    cancelled = [_export(either_database, f"gone{n}", ClipStatus.READY) for n in range(45)]
    ready = _export(either_database, "wanted", ClipStatus.READY)
    with either_database.session() as session:
        session.execute(update(Job).where(Job.id.in_(cancelled)).values(cancel_requested=True))
    assert _claim(either_database) == ready


def test_higher_priority_first_then_older(either_database: Database) -> None:
    normal = [_export(either_database, f"normal{n}", ClipStatus.READY) for n in range(3)]
    low = _export(either_database, "low", ClipStatus.READY)
    high = _export(either_database, "high", ClipStatus.READY)
    with either_database.session() as session:
        session.execute(update(Job).where(Job.id == low).values(priority=Priority.LOW))
        session.execute(update(Job).where(Job.id == high).values(priority=Priority.HIGH))
    order = [_claim(either_database) for _ in range(5)]
    assert order == [high, *normal, low]


def test_the_same_checkpoint_is_preferred_only_within_the_top_priority(
    either_database: Database,
) -> None:
    project_id = _project(either_database, "gpu")
    jobs: dict[str, str] = {}
    for name, checkpoint in (("other", "b.safetensors"), ("same", "a.safetensors")):
        (clip_id,) = _clips(either_database, project_id, ClipStatus.QUEUED, count=1)
        with either_database.session() as session:
            request = sample_request(name, checkpoint=checkpoint)
            jobs[name] = add_generate_job(session, project_id, clip_id, request, RunsOn.COMFYUI).id
    assert (
        _claim(either_database, RunsOn.COMFYUI, prefer_checkpoint="a.safetensors") == (jobs["same"])
    )
    with either_database.session() as session:
        session.execute(update(Job).where(Job.id == jobs["same"]).values(job_status="queued"))
        session.execute(update(Job).where(Job.id == jobs["other"]).values(priority=Priority.HIGH))
    assert (
        _claim(either_database, RunsOn.COMFYUI, prefer_checkpoint="a.safetensors")
        == (jobs["other"])
    )


def test_an_abandoned_prompt_is_left_to_its_own_backend(either_database: Database) -> None:
    project_id = _project(either_database, "held")
    (clip_id,) = _clips(either_database, project_id, ClipStatus.GENERATING, count=1)
    with either_database.session() as session:
        job = add_generate_job(session, project_id, clip_id, sample_request(), RunsOn.COMFYUI)
        session.flush()
        job.job_status = JobStatus.ACTIVE
        job.worker_id = "gone"
        job.attempts = 1
        job.comfy_backend = "http://a:8188"
        job.lease_expires_at = utcnow() - timedelta(seconds=5)
        job_id = job.id
    assert _claim(either_database, RunsOn.COMFYUI, backend="http://b:8188", takeover=60) is None
    assert _claim(either_database, RunsOn.COMFYUI, backend="http://a:8188", takeover=60) == job_id


def test_another_backend_takes_over_once_the_take_over_time_passed(
    either_database: Database,
) -> None:
    project_id = _project(either_database, "orphaned")
    (clip_id,) = _clips(either_database, project_id, ClipStatus.GENERATING, count=1)
    with either_database.session() as session:
        job = add_generate_job(session, project_id, clip_id, sample_request(), RunsOn.COMFYUI)
        session.flush()
        job.job_status = JobStatus.ACTIVE
        job.worker_id = "gone"
        job.attempts = 1
        job.comfy_backend = "http://a:8188"
        job.lease_expires_at = utcnow() - timedelta(seconds=90)
        job_id = job.id
    assert _claim(either_database, RunsOn.COMFYUI, backend="http://b:8188", takeover=60) == job_id
