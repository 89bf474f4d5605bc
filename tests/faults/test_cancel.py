"""A cancel reaches ComfyUI within a couple of seconds, not at the lease keeper's next round:
the lease is renewed only once a minute here, so only the short cancel poll can stop the GPU in
time for the waits below."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from tests.comfyui_double import ComfyUIDouble
from tests.fixtures.database import make_settings
from tests.fixtures.pipeline import (
    StartWorker,
    clip_row,
    job_ended,
    job_row,
    queue_clip,
    sent_prompts,
    text_clip,
    wait_for,
)
from vidgen.db.jobs import cancel_project
from vidgen.db.session import Database

# Far below the 60 s lease round, far above the couple of seconds the cancel takes.
_CANCEL_WAIT_S = 20.0


def test_a_cancel_interrupts_the_prompt_long_before_the_lease_round(
    comfyui: ComfyUIDouble,
    database: Database,
    tmp_path: Path,
    start_worker: StartWorker,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO)
    url = database.engine.url.render_as_string(hide_password=False)
    jobs = {"leaseSeconds": 120.0, "leaseRenewSeconds": 60.0}
    settings = make_settings(tmp_path, url, comfyui={"urls": [comfyui.url]}, jobs=jobs)
    comfyui.stall("KSampler")  # no progress messages: nothing but the poll can notice the cancel
    clip_id, job_id = queue_clip(database, text_clip(settings))
    start_worker(settings, comfyui.url)
    comfyui.wait_until_stalling(timeout=30)
    # The worker has written the last progress before the stall: no message will follow.
    wait_for(lambda: "KSampler" in job_row(database, job_id).current_stage, what="the progress")
    cancel_project(database, clip_row(database, clip_id).project_id)
    wait_for(lambda: not comfyui.is_stalling, _CANCEL_WAIT_S, "the interrupt to reach ComfyUI")
    assert comfyui.runs[-1].status == "interrupted"
    job = wait_for(job_ended(database, job_id), _CANCEL_WAIT_S, "the cancelled job")
    assert job.job_status == "cancelled"
    (prompt,) = sent_prompts(database, job_id)
    said = [r.getMessage() for r in caplog.records if "interrupted" in r.getMessage()]
    assert any(prompt.prompt_id in line for line in said), said
