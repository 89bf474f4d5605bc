"""Export jobs end to end on a worker: ready clips → the finished, convention-named video in
the outbox (real ffmpeg; ComfyUI engines through the double), or a clear error file."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

from tests.fixtures.comfyui import ComfyUIServer, within
from tests.fixtures.database import make_settings
from tests.fixtures.media import MakeClip
from tests.fixtures.pipeline import (
    StartWorker,
    job_ended,
    job_row,
    queue_export,
    ready_clips,
    wait_for,
)
from vidgen.db.jobs import cancel_project
from vidgen.db.session import Database
from vidgen.ffmpeg import probe
from vidgen.specs import (
    Engine,
    ExportSpec,
    InterpolateSpec,
    OutputFormat,
    Quality,
    TransitionSpec,
    TransitionType,
    UpscaleSpec,
)


def _url(database: Database) -> str:
    return database.engine.url.render_as_string(hide_password=False)


def test_three_clips_with_a_fade_land_in_the_outbox(
    make_clip: MakeClip, database: Database, tmp_path: Path, start_worker: StartWorker
) -> None:
    settings = make_settings(tmp_path, _url(database))
    clip_ids = ready_clips(database, [make_clip(), make_clip(), make_clip()])
    spec = ExportSpec(transition=TransitionSpec(TransitionType.FADE, 0.5), quality=Quality.DRAFT)
    job_id = queue_export(database, clip_ids, spec, settings.outbox)
    start_worker(settings)
    job = wait_for(job_ended(database, job_id), timeout=60, what="the export")
    assert job.job_status == "completed", job.error_message
    assert job.output_file_name is not None
    assert job.output_file_name.endswith("_testProject_export_001.mp4")
    sidecar = job.output_file_name.replace(".mp4", ".json")  # its recipe
    outputs = sorted(settings.outbox.iterdir())
    assert [p.name for p in outputs] == [sidecar, job.output_file_name]
    info = probe(outputs[1])
    assert (info.width, info.height, info.codec, info.pix_fmt) == (512, 512, "h264", "yuv420p")
    assert abs(info.duration_sec - 5.0) < 0.1
    assert not (settings.storage / "testProject" / "work" / job_id).exists()


def test_a_second_export_takes_the_next_number(
    make_clip: MakeClip, database: Database, tmp_path: Path, start_worker: StartWorker
) -> None:
    settings = make_settings(tmp_path, _url(database))
    clip_ids = ready_clips(database, [make_clip(), make_clip()])
    spec = ExportSpec(format=OutputFormat.WEBM, quality=Quality.DRAFT)
    first = queue_export(database, clip_ids, spec, settings.outbox)
    second = queue_export(database, clip_ids, spec, settings.outbox)
    start_worker(settings)
    names = []
    for job_id in (first, second):
        job = wait_for(job_ended(database, job_id), timeout=60, what="an export")
        assert job.job_status == "completed", job.error_message
        names.append(job.output_file_name)
    assert sorted(n.rsplit("_", 1)[1] for n in names if n) == ["001.webm", "002.webm"]


@pytest.mark.real_comfyui
def test_comfyui_upscale_and_interpolation_go_through_the_backend(
    make_clip: MakeClip,
    comfyui: ComfyUIServer,
    database: Database,
    tmp_path: Path,
    start_worker: StartWorker,
) -> None:
    settings = make_settings(
        tmp_path, _url(database), comfyui={"urls": [comfyui.url], "upscaleChunkFrames": 6}
    )
    clip_ids = ready_clips(database, [make_clip(64, 64, 8, 2.0)])
    spec = ExportSpec(
        upscale=UpscaleSpec(scale=2, engine=Engine.COMFYUI),
        interpolate=InterpolateSpec(fps=24, engine=Engine.COMFYUI),
        quality=Quality.DRAFT,
    )
    job_id = queue_export(database, clip_ids, spec, settings.outbox, resolution="64x64")
    start_worker(settings, comfyui.url)
    job = wait_for(job_ended(database, job_id), within(comfyui, 90), what="the export")
    assert job.job_status == "completed", job.error_message
    info = probe(Path(job.output_path or ""))
    assert (info.width, info.height) == (128, 128)
    assert info.fps == 24.0
    assert info.frame_count == 48
    classes = [{n["class_type"] for n in p.prompt.values()} for p in comfyui.prompts_received]
    assert sum("ImageUpscaleWithModel" in c for c in classes) == 3  # 16 frames in chunks of 6
    assert sum("RIFE VFI" in c for c in classes) == 1


def test_a_failed_export_writes_an_error_file(
    make_clip: MakeClip, database: Database, tmp_path: Path, start_worker: StartWorker
) -> None:
    settings = make_settings(tmp_path, _url(database))
    broken = tmp_path / "broken.mp4"
    broken.write_bytes(make_clip().read_bytes()[:2000])
    clip_ids = ready_clips(database, [make_clip(), broken])
    job_id = queue_export(database, clip_ids, ExportSpec(), settings.outbox)
    start_worker(settings)
    job = wait_for(job_ended(database, job_id), timeout=60, what="the export")
    assert job.job_status == "failed"
    errors = list(settings.outbox.glob("*_testProject_error_001.txt"))
    assert len(errors) == 1
    text = errors[0].read_text()
    assert "What failed:" in text
    assert (job.error_message or "") in text
    assert not list(settings.outbox.glob("*.mp4"))


def test_cancelling_stops_ffmpeg_and_removes_its_files(
    make_clip: MakeClip, database: Database, tmp_path: Path, start_worker: StartWorker
) -> None:
    settings = make_settings(tmp_path, _url(database))
    long_clip = make_clip(512, 512, 8, 30.0)
    clip_ids = ready_clips(database, [long_clip, long_clip])
    spec = ExportSpec(
        interpolate=InterpolateSpec(fps=60, engine=Engine.FFMPEG), quality=Quality.HIGH
    )
    job_id = queue_export(database, clip_ids, spec, settings.outbox)
    start_worker(settings)
    work = settings.storage / "testProject" / "work" / job_id
    wait_for(lambda: work.exists() and any(work.iterdir()), what="ffmpeg to start writing")
    cancel_project(database, job_row(database, job_id).project_id)
    job = wait_for(job_ended(database, job_id), what="the cancel")
    assert job.job_status == "cancelled"
    assert not work.exists()
    assert not list(settings.outbox.iterdir())
    # No ffmpeg is left writing into the job's folder (other tests may run ffmpeg meanwhile).
    running = subprocess.run(["ps", "-eo", "args"], capture_output=True, text=True).stdout
    assert str(work) not in running


@pytest.mark.skipif(os.geteuid() != 0, reason="mounting a small tmpfs needs root")
def test_a_full_outbox_holds_the_export_saying_so(
    make_clip: MakeClip, database: Database, tmp_path: Path, start_worker: StartWorker
) -> None:
    outbox = tmp_path / "small-outbox"
    outbox.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=64k", "tmpfs", str(outbox)], check=True)
    try:
        settings = make_settings(tmp_path, _url(database), outbox=str(outbox), minFreeBytes=0)
        clip_ids = ready_clips(database, [make_clip(), make_clip()])
        job_id = queue_export(database, clip_ids, ExportSpec(quality=Quality.HIGH), outbox)
        start_worker(settings)
        job = wait_for(
            lambda: (
                (j := job_row(database, job_id)).current_stage.startswith("waiting for disk") and j
            ),
            what="the export waiting for room",
        )
        assert job.job_status == "queued"
        assert "in outbox" in job.current_stage
        assert not list(outbox.iterdir())
    finally:
        subprocess.run(["umount", "-l", str(outbox)], check=False)


def test_an_outbox_that_fills_up_meanwhile_fails_clearly_and_leaves_no_partial_file(
    make_clip: MakeClip, database: Database, tmp_path: Path, start_worker: StartWorker
) -> None:
    outbox = tmp_path / "small-outbox"
    outbox.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=8m", "tmpfs", str(outbox)], check=True)
    try:
        settings = make_settings(tmp_path, _url(database), outbox=str(outbox), minFreeBytes=0)
        clip_ids = ready_clips(database, [make_clip(), make_clip()])
        job_id = queue_export(database, clip_ids, ExportSpec(quality=Quality.HIGH), outbox)
        start_worker(settings)
        wait_for(
            lambda: (
                (j := job_row(database, job_id)).job_status == "active"
                and j.current_stage != "starting"
            ),  # past the check for room
            what="the export under way",
        )
        # Someone else's copy takes the room after the check: all but 16 KiB.
        filler = outbox / ".someone-elses-copy"
        free = shutil.disk_usage(outbox).free
        filler.write_bytes(b"\0" * (free - 16 * 1024))
        job = wait_for(job_ended(database, job_id), timeout=60, what="the export")
        assert job.job_status == "failed"
        assert "full" in (job.error_message or "")
        filler.unlink()
        assert not list(outbox.glob("*.mp4"))
        assert not list(outbox.glob(".*.part"))
    finally:
        subprocess.run(["umount", "-l", str(outbox)], check=False)
