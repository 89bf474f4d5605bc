"""The schema on both databases: migrations, exact 64-bit seeds, utf8mb4 text, job claims."""

from __future__ import annotations

import json
import multiprocessing
from datetime import datetime
from pathlib import Path

import pytest
from sqlalchemy import inspect, select, text

from tests.fixtures.pipeline import placed_clip, sample_request
from tests.mariadb import own_database
from vidgen.db.claims import claim_next
from vidgen.db.counters import allocate_index
from vidgen.db.jobs import add_generate_job, complete_generate, fail
from vidgen.db.models import Clip, ClipStatus, ComfyPrompt, Job, JobStatus, Project, RunsOn
from vidgen.db.session import Database, open_database, upgrade
from vidgen.db.types import U64_MAX
from vidgen.specs import (
    ClipSpec,
    ExportRequest,
    ExportSpec,
    GenerateRequest,
    GenerationMode,
    JobOutputs,
    OutputFormat,
)


def _project(database: Database, name: str = "summerTrip") -> str:
    with database.session() as session:
        project = Project(project_name=name, display_name=name, resolution="512x512", frame_rate=8)
        session.add(project)
        session.flush()
        return project.id


def _clip(database: Database, project_id: str, seed: int, prompt: str = "fox") -> str:
    with database.session() as session:
        clip = Clip(
            project_id=project_id,
            clip_name="clip1",
            order_index=0,
            generation_mode="textToVideo",
            prompt=prompt,
            seed_value=seed,
            settings_hash="0" * 64,
        )
        session.add(clip)
        session.flush()
        return clip.id


@pytest.mark.parametrize("seed", [0, 1, 2**63 - 1, 2**63, U64_MAX])
def test_seed_round_trips_exactly_on_mariadb(database: Database, seed: int) -> None:
    clip_id = _clip(database, _project(database), seed)
    with database.session() as session:
        assert session.get_one(Clip, clip_id).seed_value == seed


@pytest.mark.parametrize("seed", [0, 2**63, U64_MAX])
def test_seed_round_trips_exactly_on_sqlite(sqlite_database: Database, seed: int) -> None:
    clip_id = _clip(sqlite_database, _project(sqlite_database), seed)
    with sqlite_database.session() as session:
        assert session.get_one(Clip, clip_id).seed_value == seed


def test_seed_outside_64_bits_is_refused(database: Database) -> None:
    with pytest.raises(Exception, match=r"outside 0\.\.2\^64-1"):
        _clip(database, _project(database), 2**64)


def test_korean_and_emoji_text_survive_utf8mb4(database: Database) -> None:
    prompt = "내 프로젝트: 여우가 눈 속을 달린다 🦊❄️"
    clip_id = _clip(database, _project(database, "내프로젝트"), 7, prompt)
    with database.session() as session:
        clip = session.get_one(Clip, clip_id)
        assert clip.prompt == prompt
        assert clip.project.project_name == "내프로젝트"


def test_migrations_create_every_table(database: Database, sqlite_database: Database) -> None:
    expected = {"project", "clip", "job", "job_log", "manifest", "name_counter", "alembic_version"}
    assert expected <= set(inspect(database.engine).get_table_names())
    assert expected <= set(inspect(sqlite_database.engine).get_table_names())


def test_upgrade_twice_is_harmless(sqlite_database: Database) -> None:
    upgrade(sqlite_database)
    assert "job" in inspect(sqlite_database.engine).get_table_names()


def _take_indices(url: str, count: int, queue: multiprocessing.Queue[list[int]]) -> None:
    database = open_database(url)
    queue.put([allocate_index(database, "raceProject", "export") for _ in range(count)])
    database.dispose()


@pytest.mark.parametrize("backend", ["mariadb", "sqlite"])
def test_indices_are_unique_across_processes(
    backend: str, database: Database, tmp_path: Path
) -> None:
    if backend == "mariadb":
        url = database.engine.url.render_as_string(hide_password=False)
    else:
        url = f"sqlite:///{tmp_path / 'race.db'}"
        upgrade(open_database(url))
    context = multiprocessing.get_context("spawn")
    queue: multiprocessing.Queue[list[int]] = context.Queue()
    workers = [context.Process(target=_take_indices, args=(url, 25, queue)) for _ in range(4)]
    for worker in workers:
        worker.start()
    taken = [index for _ in workers for index in queue.get(timeout=120)]
    for worker in workers:
        worker.join(timeout=60)
    assert sorted(taken) == list(range(1, 101))


def test_two_workers_never_claim_the_same_job(database: Database) -> None:
    project_id = _project(database)
    for n in range(3):
        clip_id = _clip(database, project_id, n)
        with database.session() as session:
            add_generate_job(session, project_id, clip_id, sample_request(), RunsOn.COMFYUI)
    claims = [
        claim_next(database, f"w{n}", RunsOn.COMFYUI, lease_seconds=30, max_attempts=3)
        for n in range(4)
    ]
    taken = [c.id for c in claims if c is not None]
    assert len(taken) == 3
    assert len(set(taken)) == 3
    assert claims[3] is None
    assert claim_next(database, "cpu", RunsOn.CPU, lease_seconds=30, max_attempts=3) is None


def test_completed_and_failed_jobs_set_their_clip(database: Database) -> None:
    project_id = _project(database)
    ids = [_clip(database, project_id, n) for n in range(2)]
    with database.session() as session:
        for clip_id in ids:
            add_generate_job(session, project_id, clip_id, sample_request(), RunsOn.COMFYUI)
    first = claim_next(database, "w", RunsOn.COMFYUI, lease_seconds=30, max_attempts=3)
    second = claim_next(database, "w", RunsOn.COMFYUI, lease_seconds=30, max_attempts=3)
    assert first is not None
    assert second is not None
    assert complete_generate(database, first.id, "w", placed_clip())
    fail(database, second.id, "w", "ComfyUI said no")
    with database.session() as session:
        statuses = {job.input_clip_ids[0]: job.job_status for job in session.scalars(select(Job))}
        assert statuses[first.input_clip_ids[0]] == JobStatus.COMPLETED
        assert statuses[second.input_clip_ids[0]] == JobStatus.FAILED
        clip = session.get_one(Clip, second.input_clip_ids[0])
        assert clip.clip_status == ClipStatus.FAILED
        assert clip.error_message == "ComfyUI said no"
        assert session.get_one(Clip, first.input_clip_ids[0]).clip_status == ClipStatus.READY


@pytest.mark.parametrize("backend", ["mariadb", "sqlite"])
def test_models_and_migrations_agree(
    backend: str, database: Database, sqlite_database: Database
) -> None:
    from alembic import command
    from alembic.config import Config

    from vidgen.db.session import MIGRATIONS_DIR

    chosen = database if backend == "mariadb" else sqlite_database
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    with chosen.engine.begin() as connection:
        config.attributes["connection"] = connection
        command.check(config)  # raises when autogenerate would change the schema


def _fresh_database(backend: str, mariadb_url: str, tmp_path: Path) -> Database:
    if backend == "sqlite":
        return open_database(f"sqlite:///{tmp_path / 'old.db'}")
    url = own_database(mariadb_url, "migration")
    database = open_database(url)
    with database.engine.begin() as connection:
        name = database.engine.url.database
        connection.execute(text(f"DROP DATABASE `{name}`"))
        connection.execute(text(f"CREATE DATABASE `{name}` CHARACTER SET utf8mb4"))
    database.dispose()
    return open_database(url)


def _migrate(database: Database, revision: str) -> None:
    from alembic import command
    from alembic.config import Config

    from vidgen.db.session import MIGRATIONS_DIR

    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    with database.engine.begin() as connection:
        config.attributes["connection"] = connection
        command.upgrade(config, revision)


_OLD_ROWS = """
INSERT INTO project (id, projectName, displayName, description, resolution, frameRate,
    projectStatus, outboxPath, createdAt, updatedAt)
VALUES ('p1', 'old', 'Old', '', '512x288', 8, 'active', '', :now, :now);
INSERT INTO job (id, projectId, jobType, runsOn, inputClipIds, jobSettings, dependsOn,
    progressPercent, currentStage, jobStatus, attempts, comfyPromptId, comfyBackend,
    cancelRequested, createdAt, updatedAt)
VALUES ('g1', 'p1', 'generate', 'comfyui', '["c1"]', :generate, '[]', 0, 'active', 'active', 1,
    'prompt-1', 'http://gpu:8188', 0, :now, :now);
INSERT INTO job (id, projectId, jobType, runsOn, inputClipIds, jobSettings, dependsOn,
    progressPercent, currentStage, jobStatus, attempts, cancelRequested, createdAt, updatedAt)
VALUES ('e1', 'p1', 'export', 'cpu', '["c1"]', :export, '[]', 0, 'queued', 'queued', 0, 0,
    :now, :now)
"""


@pytest.mark.parametrize("backend", ["mariadb", "sqlite"])
def test_migration_0003_keeps_the_request_and_moves_what_the_job_made(
    backend: str, mariadb_url: str, tmp_path: Path
) -> None:
    database = _fresh_database(backend, mariadb_url, tmp_path)
    _migrate(database, "0002")
    clip = ClipSpec("clip1", GenerationMode.TEXT_TO_VIDEO, "fox", seed=7)
    export = ExportSpec(format=OutputFormat.WEBM)
    graph = {"1": {"class_type": "KSampler", "inputs": {}}}
    generate = {
        **GenerateRequest(clip).to_json(),
        "submitted": {"promptId": "prompt-1", "backend": "http://gpu:8188", "graph": graph},
        "outputs": {"clip": "/s/old/clips/c.mp4", "thumbnail": "/s/old/thumbnails/t.jpg"},
    }
    old_export = {
        "export": export.to_json(),
        "outbox": "/outbox",
        "resolution": "512x288",
        "frameRate": 8,
        "outputs": {"export": "/outbox/x.webm"},
    }
    with database.engine.begin() as connection:
        for statement in _OLD_ROWS.split(";"):
            connection.execute(
                text(statement),
                {
                    "now": datetime(2026, 11, 30),  # noqa: DTZ001 (the columns hold naive UTC)
                    "generate": json.dumps(generate),
                    "export": json.dumps(old_export),
                },
            )
    _migrate(database, "head")
    with database.session() as session:
        generate_job = session.get_one(Job, "g1")
        export_job = session.get_one(Job, "e1")
        assert GenerateRequest.from_json(generate_job.job_settings) == GenerateRequest(clip)
        assert set(generate_job.job_settings) == {"clip"}
        assert JobOutputs.from_json(generate_job.job_outputs) == JobOutputs(
            clip="/s/old/clips/c.mp4", thumbnail="/s/old/thumbnails/t.jpg"
        )
        assert ExportRequest.from_json(export_job.job_settings) == ExportRequest(
            export, "/outbox", 512, 288, 8
        )
        assert JobOutputs.from_json(export_job.job_outputs).export == "/outbox/x.webm"
        (prompt,) = session.scalars(select(ComfyPrompt))
        assert (prompt.id, prompt.job_id, prompt.step) == ("prompt-1", "g1", "clip")
        assert (prompt.backend, prompt.graph) == ("http://gpu:8188", graph)
    database.dispose()
