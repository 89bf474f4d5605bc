"""Workers as real processes: killed with SIGKILL mid-clip, restarted, stopped with SIGTERM."""

from __future__ import annotations

import os
import signal
import subprocess
from pathlib import Path

from tests.comfyui_double import ComfyUIDouble
from tests.fixtures.database import make_settings, write_config
from tests.fixtures.pipeline import (
    clip_row,
    job_ended,
    job_row,
    queue_clip,
    start_work,
    text_clip,
    wait_for,
)
from vidgen.db.session import Database


def test_a_killed_worker_is_followed_without_running_the_prompt_twice(
    comfyui: ComfyUIDouble,
    database: Database,
    tmp_path: Path,
    processes: list[subprocess.Popen[bytes]],
) -> None:
    url = database.engine.url.render_as_string(hide_password=False)
    overrides = {"comfyui": {"urls": [comfyui.url]}, "jobs": {"leaseSeconds": 2.0}}
    config = write_config(tmp_path, url, **overrides)
    settings = make_settings(tmp_path, url, **overrides)
    comfyui.stall("KSampler")
    clip_id, job_id = queue_clip(database, text_clip(settings))
    first = start_work(config, processes)
    comfyui.wait_until_stalling(timeout=30)
    os.kill(first.pid, signal.SIGKILL)
    first.wait(timeout=10)
    assert job_row(database, job_id).job_status == "active"  # its lease has not run out yet
    comfyui.release()  # the prompt finishes in ComfyUI while no worker watches
    wait_for(lambda: comfyui.runs and comfyui.runs[0].status == "success", what="the prompt")
    start_work(config, processes)
    job = wait_for(job_ended(database, job_id), timeout=60, what="the restarted worker")
    assert job.job_status == "completed", job.error_message
    assert job.attempts == 2
    assert len(comfyui.prompts_received) == 1  # collected from history, not run again
    clip = clip_row(database, clip_id)
    assert clip.clip_status == "ready"
    clips_dir = settings.storage / "testProject" / "clips"
    assert [p.name for p in clips_dir.iterdir()] == [clip.file_name]
    assert not list((settings.storage / "testProject").rglob("*.part"))


def test_sigterm_releases_the_job_and_the_prompt_is_collected_next_start(
    comfyui: ComfyUIDouble,
    database: Database,
    tmp_path: Path,
    processes: list[subprocess.Popen[bytes]],
) -> None:
    url = database.engine.url.render_as_string(hide_password=False)
    overrides = {"comfyui": {"urls": [comfyui.url]}, "jobs": {"leaseSeconds": 60.0}}
    config = write_config(tmp_path, url, **overrides)
    settings = make_settings(tmp_path, url, **overrides)
    comfyui.stall("KSampler")
    _clip_id, job_id = queue_clip(database, text_clip(settings))
    first = start_work(config, processes)
    comfyui.wait_until_stalling(timeout=30)
    first.send_signal(signal.SIGTERM)
    assert first.wait(timeout=15) == 0
    job = job_row(database, job_id)
    assert job.job_status == "queued"  # released at once, not left to a 60 s lease
    assert comfyui.is_stalling  # the prompt keeps running in ComfyUI
    comfyui.release()
    start_work(config, processes)
    job = wait_for(job_ended(database, job_id), timeout=60, what="the next start")
    assert job.job_status == "completed", job.error_message
    assert len(comfyui.prompts_received) == 1
