"""Failures around the pipeline: the database restarting under a running worker."""

from __future__ import annotations

import time
from pathlib import Path

from tests.comfyui_double import ComfyUIDouble
from tests.fixtures.database import make_settings
from tests.fixtures.pipeline import (
    StartWorker,
    clip_row,
    job_ended,
    queue_clip,
    text_clip,
    wait_for,
)
from tests.mariadb import ThrowawayMariaDB
from vidgen.db.session import Database, open_database, upgrade


def test_a_database_restart_mid_clip_loses_nothing(
    comfyui: ComfyUIDouble,
    own_mariadb: ThrowawayMariaDB,
    tmp_path: Path,
    start_worker: StartWorker,
) -> None:
    database: Database = open_database(own_mariadb.url)
    upgrade(database)
    settings = make_settings(tmp_path, own_mariadb.url, comfyui={"urls": [comfyui.url]})
    comfyui.stall("KSampler")
    clip_id, job_id = queue_clip(database, text_clip(settings))
    start_worker(settings, comfyui.url)
    comfyui.wait_until_stalling(timeout=30)
    own_mariadb.stop()
    comfyui.release()  # the clip finishes while the database is down
    wait_for(lambda: comfyui.runs and comfyui.runs[0].status == "success", what="the prompt")
    time.sleep(1.0)  # the worker meets the dead database (progress, lease, finishing)
    own_mariadb.start()
    job = wait_for(job_ended(database, job_id), timeout=60, what="the job after the restart")
    assert job.job_status == "completed", job.error_message
    clip = clip_row(database, clip_id)
    assert clip.clip_status == "ready"
    assert len(comfyui.prompts_received) == 1
    clips_dir = settings.storage / "testProject" / "clips"
    assert [p.name for p in clips_dir.iterdir()] == [clip.file_name]
    database.dispose()
