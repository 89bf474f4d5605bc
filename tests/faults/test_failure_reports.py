"""An export that fails leaves one report in the outbox, whatever failed: a clip it waited for
(ComfyUI's message about that clip), or one of its own ComfyUI or FFmpeg steps."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from tests.comfyui_double import ComfyUIDouble
from tests.fixtures.database import make_settings
from tests.fixtures.media import MakeClip
from tests.fixtures.pipeline import (
    StartWorker,
    job_ended,
    queue_clip,
    queue_export,
    ready_clips,
    text_clip,
    wait_for,
)
from vidgen.db.session import Database
from vidgen.specs import Engine, ExportSpec, Quality, UpscaleSpec


def _url(database: Database) -> str:
    return database.engine.url.render_as_string(hide_password=False)


def _one_report(outbox: Path) -> str:
    reports = sorted(outbox.glob("*_testProject_error_*.txt"))
    assert [p.name[9:] for p in reports] == ["testProject_error_001.txt"]
    return reports[0].read_text(encoding="utf-8")


def _failure_lines(caplog: pytest.LogCaptureFixture, job_id: str) -> list[str]:
    return [
        r.getMessage()
        for r in caplog.records
        if r.levelno >= logging.ERROR and job_id in r.getMessage()
    ]


def test_an_export_whose_clip_failed_in_comfyui_leaves_one_report(
    comfyui: ComfyUIDouble,
    database: Database,
    tmp_path: Path,
    start_worker: StartWorker,
    caplog: pytest.LogCaptureFixture,
) -> None:
    settings = make_settings(tmp_path, _url(database), comfyui={"urls": [comfyui.url]})
    comfyui.fail_at("KSampler", "CUDA out of memory", "torch.OutOfMemoryError")
    clip_id, clip_job = queue_clip(database, text_clip(settings, "oceanWaves"))
    export_job = queue_export(
        database, [clip_id], ExportSpec(), settings.outbox, resolution="64x64"
    )
    start_worker(settings, comfyui.url)
    start_worker(settings)  # the CPU worker an FFmpeg-only export runs on
    assert wait_for(job_ended(database, clip_job), what="the clip").job_status == "failed"
    export = wait_for(job_ended(database, export_job), timeout=60, what="the export")
    assert export.job_status == "failed"
    report = _one_report(settings.outbox)
    assert "clip oceanWaves failed" in report
    assert "CUDA out of memory" in report
    assert str(tmp_path) not in report
    assert len(_failure_lines(caplog, export_job)) == 1


def test_an_export_whose_comfyui_step_failed_leaves_one_report(
    make_clip: MakeClip,
    comfyui: ComfyUIDouble,
    database: Database,
    tmp_path: Path,
    start_worker: StartWorker,
    caplog: pytest.LogCaptureFixture,
) -> None:
    settings = make_settings(tmp_path, _url(database), comfyui={"urls": [comfyui.url]})
    comfyui.fail_at("ImageUpscaleWithModel", "CUDA out of memory", "torch.OutOfMemoryError")
    clip_ids = ready_clips(database, [make_clip(64, 64, 8, 2.0)])
    spec = ExportSpec(upscale=UpscaleSpec(scale=2, engine=Engine.COMFYUI), quality=Quality.DRAFT)
    job_id = queue_export(database, clip_ids, spec, settings.outbox, resolution="64x64")
    start_worker(settings, comfyui.url)
    assert wait_for(job_ended(database, job_id), timeout=60).job_status == "failed"
    report = _one_report(settings.outbox)
    assert "CUDA out of memory" in report
    assert len(_failure_lines(caplog, job_id)) == 1
