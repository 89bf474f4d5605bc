"""Generating clips through the ComfyUI double over real sockets, with the real database and
ffmpeg: every run ends completed or clearly failed, never stuck."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest

from tests.comfyui_double import ComfyUIDouble
from tests.fixtures.comfyui import ComfyUIFactory, ComfyUIServer, within
from tests.fixtures.database import make_settings
from tests.fixtures.media import make_image
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
from vidgen.config import Settings
from vidgen.db.jobs import cancel_project
from vidgen.db.session import Database
from vidgen.ffmpeg import probe
from vidgen.specs import GenerationMode


def _settings_for(tmp_path: Path, database: Database, *urls: str) -> Settings:
    url = database.engine.url.render_as_string(hide_password=False)
    return make_settings(tmp_path, url, comfyui={"urls": list(urls)})


@pytest.mark.real_comfyui
def test_text_to_video_makes_a_ready_clip_with_thumbnail(
    comfyui: ComfyUIServer, database: Database, tmp_path: Path, start_worker: StartWorker
) -> None:
    settings = _settings_for(tmp_path, database, comfyui.url)
    clip_id, job_id = queue_clip(database, text_clip(settings, frames=16, width=64, height=48))
    start_worker(settings, comfyui.url)
    job = wait_for(job_ended(database, job_id), within(comfyui, 30), what="the generate job")
    assert job.job_status == "completed", job.error_message
    clip = clip_row(database, clip_id)
    assert clip.clip_status == "ready"
    info = probe(Path(clip.file_path or ""))
    assert (info.width, info.height, info.frame_count) == (64, 48, 16)
    assert info.fps == 8.0
    assert abs(info.duration_sec - 2.0) < 0.01
    assert clip.frame_count == 16
    assert clip.duration_sec is not None
    assert abs(clip.duration_sec - 2.0) < 0.01
    assert clip.file_name is not None
    assert clip.file_name.endswith("_testProject_clip_001.mp4")
    assert clip.thumbnail_path is not None
    assert Path(clip.thumbnail_path).stat().st_size > 0
    assert clip.workflow_json == comfyui.prompts_received[0].prompt
    (sent,) = sent_prompts(database, job_id)
    assert (sent.prompt_id, sent.step) == (comfyui.prompts_received[0].prompt_id, "clip")
    assert (sent.backend, sent.graph) == (comfyui.url, comfyui.prompts_received[0].prompt)
    assert job.progress_percent == 100.0
    work = settings.storage / "testProject" / "work"
    assert not work.exists() or not any(work.rglob("*"))


@pytest.mark.real_comfyui
def test_image_to_video_uploads_the_reference(
    comfyui: ComfyUIServer, database: Database, tmp_path: Path, start_worker: StartWorker
) -> None:
    settings = _settings_for(tmp_path, database, comfyui.url)
    image = make_image(tmp_path / "girl.png")
    spec = text_clip(
        settings, mode=GenerationMode.IMAGE_TO_VIDEO, reference_image=str(image), frames=8
    )
    clip_id, job_id = queue_clip(database, spec)
    start_worker(settings, comfyui.url)
    job = wait_for(job_ended(database, job_id), within(comfyui, 30), what="the generate job")
    assert job.job_status == "completed", job.error_message
    uploaded = comfyui.uploaded(f"vidgen-{job_id}*")
    assert len(uploaded) == 1
    graph = comfyui.prompts_received[0].prompt
    assert any(n["class_type"] == "IPAdapterAdvanced" for n in graph.values())
    load = next(n for n in graph.values() if n["class_type"] == "LoadImage")
    assert load["inputs"]["image"] == uploaded[0]
    assert probe(Path(clip_row(database, clip_id).file_path or "")).frame_count == 8


def test_rejected_graph_fails_the_clip_in_words(
    comfyui: ComfyUIDouble, database: Database, tmp_path: Path, start_worker: StartWorker
) -> None:
    settings = _settings_for(tmp_path, database, comfyui.url)
    comfyui.set_models("checkpoints", ["other.safetensors"])
    clip_id, job_id = queue_clip(database, text_clip(settings))
    start_worker(settings, comfyui.url)
    job = wait_for(job_ended(database, job_id), what="the generate job")
    assert job.job_status == "failed"
    assert "CheckpointLoaderSimple" in (job.error_message or "")
    assert "ckpt_name" in (job.error_message or "")
    assert job.attempts == 1  # a rejected graph is not retried
    assert clip_row(database, clip_id).clip_status == "failed"


def test_execution_error_fails_with_comfyui_message(
    comfyui: ComfyUIDouble, database: Database, tmp_path: Path, start_worker: StartWorker
) -> None:
    settings = _settings_for(tmp_path, database, comfyui.url)
    comfyui.fail_at("KSampler", "CUDA out of memory", "torch.OutOfMemoryError")
    _clip_id, job_id = queue_clip(database, text_clip(settings))
    start_worker(settings, comfyui.url)
    job = wait_for(job_ended(database, job_id), what="the generate job")
    assert job.job_status == "failed"
    assert "KSampler" in (job.error_message or "")
    assert "CUDA out of memory" in (job.error_message or "")


def test_dropped_socket_still_completes(
    comfyui: ComfyUIDouble, database: Database, tmp_path: Path, start_worker: StartWorker
) -> None:
    settings = _settings_for(tmp_path, database, comfyui.url)
    comfyui.stall("KSampler")
    _clip_id, job_id = queue_clip(database, text_clip(settings))
    start_worker(settings, comfyui.url)
    comfyui.wait_until_stalling()
    comfyui.drop_sockets()
    comfyui.release()
    job = wait_for(job_ended(database, job_id), what="the generate job")
    assert job.job_status == "completed", job.error_message
    assert len(comfyui.runs) == 1


def test_silent_socket_is_polled(
    comfyui: ComfyUIDouble, database: Database, tmp_path: Path, start_worker: StartWorker
) -> None:
    settings = _settings_for(tmp_path, database, comfyui.url)
    comfyui.silent_socket = True
    comfyui.history_delay_seconds = 0.3
    _clip_id, job_id = queue_clip(database, text_clip(settings))
    start_worker(settings, comfyui.url)
    job = wait_for(job_ended(database, job_id), what="the generate job")
    assert job.job_status == "completed", job.error_message


def test_restart_losing_the_queue_requeues_the_prompt(
    comfyui: ComfyUIDouble, database: Database, tmp_path: Path, start_worker: StartWorker
) -> None:
    settings = _settings_for(tmp_path, database, comfyui.url)
    comfyui.stall("KSampler")
    _clip_id, job_id = queue_clip(database, text_clip(settings))
    start_worker(settings, comfyui.url)
    comfyui.wait_until_stalling()
    comfyui.restart()
    job = wait_for(job_ended(database, job_id), what="the generate job")
    assert job.job_status == "completed", job.error_message
    assert job.attempts == 2
    assert len({p.prompt_id for p in comfyui.prompts_received}) == 2


def test_unreachable_backend_makes_jobs_wait_then_run(
    comfyui: ComfyUIDouble, database: Database, tmp_path: Path, start_worker: StartWorker
) -> None:
    settings = _settings_for(tmp_path, database, comfyui.url)
    comfyui.go_away()
    _clip_id, job_id = queue_clip(database, text_clip(settings))
    start_worker(settings, comfyui.url)
    waiting = wait_for(
        lambda: "waiting for ComfyUI" in job_row(database, job_id).current_stage,
        what="the job to say it waits",
    )
    assert waiting
    assert job_row(database, job_id).job_status == "queued"
    comfyui.come_back()
    job = wait_for(job_ended(database, job_id), what="the generate job")
    assert job.job_status == "completed", job.error_message
    assert job.attempts == 1


def test_cancel_interrupts_the_running_prompt(
    comfyui: ComfyUIDouble, database: Database, tmp_path: Path, start_worker: StartWorker
) -> None:
    settings = _settings_for(tmp_path, database, comfyui.url)
    comfyui.stall("KSampler")
    clip_id, job_id = queue_clip(database, text_clip(settings))
    start_worker(settings, comfyui.url)
    comfyui.wait_until_stalling()
    cancel_project(database, clip_row(database, clip_id).project_id)
    job = wait_for(job_ended(database, job_id), what="the cancelled job")
    assert job.job_status == "cancelled"
    assert clip_row(database, clip_id).clip_status == "cancelled"
    wait_for(lambda: not comfyui.is_stalling, what="the prompt to be interrupted")
    assert comfyui.runs[-1].status == "interrupted"


def test_another_clients_prompt_is_left_alone(
    comfyui: ComfyUIDouble, database: Database, tmp_path: Path, start_worker: StartWorker
) -> None:
    import httpx

    settings = _settings_for(tmp_path, database, comfyui.url)
    spec = text_clip(settings)
    from workflows import build_text_to_video

    graph = build_text_to_video(replace(spec, seed=7), "someone-else")
    comfyui.stall("KSampler")
    answer = httpx.post(f"{comfyui.url}/prompt", json={"prompt": graph, "client_id": "other"})
    assert answer.status_code == 200
    comfyui.wait_until_stalling()
    clip_id, job_id = queue_clip(database, spec)
    start_worker(settings, comfyui.url)
    wait_for(lambda: len(comfyui.prompts_received) == 2, what="our prompt to be queued")
    cancel_project(database, clip_row(database, clip_id).project_id)
    job = wait_for(job_ended(database, job_id), what="our cancelled job")
    assert job.job_status == "cancelled"
    assert comfyui.is_stalling  # the other client's prompt still runs
    comfyui.release()
    wait_for(lambda: comfyui.runs and comfyui.runs[0].status == "success", what="theirs")
    assert [r.status for r in comfyui.runs] == ["success"]


def test_two_backends_share_the_clips_one_prompt_at_a_time(
    comfyui_factory: ComfyUIFactory, database: Database, tmp_path: Path, start_worker: StartWorker
) -> None:
    first, second = comfyui_factory(step_seconds=0.05), comfyui_factory(step_seconds=0.05)
    settings = _settings_for(tmp_path, database, first.url, second.url)
    ids = [
        queue_clip(database, text_clip(settings, f"clip{n}", seed=n), order_index=n)[1]
        for n in range(6)
    ]
    start_worker(settings, first.url)
    start_worker(settings, second.url)
    for job_id in ids:
        job = wait_for(job_ended(database, job_id), what=f"job {job_id}")
        assert job.job_status == "completed", job.error_message
    assert len(first.runs) >= 1
    assert len(second.runs) >= 1
    assert len(first.runs) + len(second.runs) == 6
    assert first.max_running == 1
    assert second.max_running == 1
    # One running and at most one queued behind it: the next prompt waits in ComfyUI, no more.
    assert first.max_queue_remaining <= 2
    assert second.max_queue_remaining <= 2


def test_a_prompt_that_never_ends_is_stopped_and_fails(
    comfyui: ComfyUIDouble, database: Database, tmp_path: Path, start_worker: StartWorker
) -> None:
    url = database.engine.url.render_as_string(hide_password=False)
    settings = make_settings(
        tmp_path, url, comfyui={"urls": [comfyui.url], "promptTimeoutSeconds": 1.0}
    )
    comfyui.stall("KSampler")
    clip_id, job_id = queue_clip(database, text_clip(settings))
    start_worker(settings, comfyui.url)
    job = wait_for(job_ended(database, job_id), what="the stalled job")
    assert job.job_status == "failed"
    assert "did not finish within 1 s" in (job.error_message or "")
    assert clip_row(database, clip_id).clip_status == "failed"
    wait_for(lambda: not comfyui.is_stalling, what="the prompt to be interrupted")
