"""A backend's worker dies: after ``jobs.backendTakeoverSeconds`` another backend's worker
finishes its job, collecting the prompt from the original backend when that still answers and
generating it anew when not; a worker that merely lost its lease leaves its prompt running."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

from sqlalchemy import update

from tests.comfyui_double import ComfyUIDouble
from tests.fixtures.comfyui import ComfyUIFactory
from tests.fixtures.database import make_settings, write_config
from tests.fixtures.pipeline import (
    StartWorker,
    clip_row,
    job_ended,
    job_row,
    queue_clip,
    text_clip,
    wait_for,
)
from vidgen.config import Settings
from vidgen.db.models import Job
from vidgen.db.session import Database

VIDGEN = str(Path(sys.executable).with_name("vidgen"))
_JOBS = {"leaseSeconds": 2.0, "backendTakeoverSeconds": 1.0}


def _url(database: Database) -> str:
    return database.engine.url.render_as_string(hide_password=False)


def _kill_worker_mid_prompt(
    tmp_path: Path,
    database: Database,
    first: ComfyUIDouble,
    processes: list[subprocess.Popen[bytes]],
) -> tuple[Settings, str, str]:
    """A `vidgen work` for ``first`` alone, killed while its prompt runs there."""
    config = write_config(tmp_path, _url(database), comfyui={"urls": [first.url]}, jobs=_JOBS)
    settings = make_settings(tmp_path, _url(database), comfyui={"urls": [first.url]}, jobs=_JOBS)
    first.stall("KSampler")
    clip_id, job_id = queue_clip(database, text_clip(settings))
    process = subprocess.Popen(
        [VIDGEN, "--config", str(config), "work"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    processes.append(process)
    first.wait_until_stalling(timeout=30)
    os.kill(process.pid, signal.SIGKILL)
    process.wait(timeout=10)
    return settings, clip_id, job_id


def _finished_by_other_backend(
    database: Database, clip_id: str, job_id: str, settings: Settings
) -> None:
    job = wait_for(job_ended(database, job_id), timeout=90, what="the other backend's worker")
    assert job.job_status == "completed", job.error_message
    assert job.attempts == 2
    clip = clip_row(database, clip_id)
    assert clip.clip_status == "ready"
    clips = settings.storage / "testProject" / "clips"
    assert [p.name for p in clips.iterdir()] == [clip.file_name]


def test_a_dead_workers_prompt_is_collected_from_its_backend_by_another_worker(
    comfyui_factory: ComfyUIFactory,
    database: Database,
    tmp_path: Path,
    start_worker: StartWorker,
    processes: list[subprocess.Popen[bytes]],
) -> None:
    first, second = comfyui_factory(), comfyui_factory()
    settings, clip_id, job_id = _kill_worker_mid_prompt(tmp_path, database, first, processes)
    first.release()  # the prompt ends at the first backend while no worker of it is left
    wait_for(lambda: first.runs and first.runs[0].status == "success", what="the prompt")
    start_worker(
        make_settings(tmp_path, _url(database), comfyui={"urls": [second.url]}, jobs=_JOBS),
        second.url,
    )
    _finished_by_other_backend(database, clip_id, job_id, settings)
    assert len(first.prompts_received) == 1  # collected from its history, not run again
    assert second.prompts_received == []


def test_a_dead_workers_prompt_is_made_anew_when_its_backend_is_gone(
    comfyui_factory: ComfyUIFactory,
    database: Database,
    tmp_path: Path,
    start_worker: StartWorker,
    processes: list[subprocess.Popen[bytes]],
) -> None:
    first, second = comfyui_factory(), comfyui_factory()
    settings, clip_id, job_id = _kill_worker_mid_prompt(tmp_path, database, first, processes)
    first.go_away()
    start_worker(
        make_settings(tmp_path, _url(database), comfyui={"urls": [second.url]}, jobs=_JOBS),
        second.url,
    )
    _finished_by_other_backend(database, clip_id, job_id, settings)
    assert len(second.prompts_received) == 1


def test_a_worker_that_lost_its_lease_leaves_its_prompt_running(
    comfyui: ComfyUIDouble, database: Database, tmp_path: Path, start_worker: StartWorker
) -> None:
    settings = make_settings(tmp_path, _url(database), comfyui={"urls": [comfyui.url]})
    comfyui.stall("KSampler")
    _clip_id, job_id = queue_clip(database, text_clip(settings))
    worker = start_worker(settings, comfyui.url)
    comfyui.wait_until_stalling(timeout=30)
    with database.session() as session:  # as if another worker had taken the job over
        session.execute(update(Job).where(Job.id == job_id).values(worker_id="elsewhere:1:gpu"))
    wait_for(lambda: not worker.leases.held(), what="the worker to let the job go")
    assert comfyui.is_stalling  # not interrupted: the new holder collects it
    assert comfyui.runs[-1].status is None
    assert job_row(database, job_id).job_status == "active"
