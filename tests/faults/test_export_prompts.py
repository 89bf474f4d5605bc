"""An export's ComfyUI prompts (Real-ESRGAN chunks, RIFE) are each sent once, also when the
worker is killed in the middle of one and another attempt finishes the export."""

from __future__ import annotations

import os
import signal
import subprocess
from collections import Counter
from pathlib import Path

from tests.comfyui_double import ComfyUIDouble
from tests.fixtures.database import write_config
from tests.fixtures.media import MakeClip
from tests.fixtures.pipeline import (
    job_ended,
    queue_export,
    ready_clips,
    sent_prompts,
    start_work,
    wait_for,
)
from vidgen.db.session import Database
from vidgen.ffmpeg import probe
from vidgen.specs import Engine, ExportSpec, InterpolateSpec, Quality, UpscaleSpec


def _graph_classes(comfyui: ComfyUIDouble) -> Counter[str]:
    """How many prompts of each kind the backend received."""
    kinds: Counter[str] = Counter()
    for received in comfyui.prompts_received:
        classes = {node["class_type"] for node in received.prompt.values()}
        kinds["upscale" if "ImageUpscaleWithModel" in classes else "interpolate"] += 1
    return kinds


def test_a_worker_killed_mid_export_step_sends_no_prompt_twice(
    make_clip: MakeClip,
    comfyui: ComfyUIDouble,
    database: Database,
    tmp_path: Path,
    processes: list[subprocess.Popen[bytes]],
) -> None:
    url = database.engine.url.render_as_string(hide_password=False)
    comfy = {"urls": [comfyui.url], "upscaleChunkFrames": 6}
    config = write_config(tmp_path, url, comfyui=comfy, jobs={"leaseSeconds": 2.0})
    clip_ids = ready_clips(database, [make_clip(64, 64, 8, 2.0)])
    spec = ExportSpec(
        upscale=UpscaleSpec(scale=2, engine=Engine.COMFYUI),
        interpolate=InterpolateSpec(fps=24, engine=Engine.COMFYUI),
        quality=Quality.DRAFT,
    )
    job_id = queue_export(database, clip_ids, spec, tmp_path / "outbox", resolution="64x64")
    comfyui.stall("ImageUpscaleWithModel")  # the first chunk of the upscale step
    first = start_work(config, processes)
    comfyui.wait_until_stalling(timeout=60)
    os.kill(first.pid, signal.SIGKILL)
    first.wait(timeout=10)
    comfyui.release()
    start_work(config, processes)
    job = wait_for(job_ended(database, job_id), timeout=120, what="the restarted export")
    assert job.job_status == "completed", job.error_message
    assert job.attempts == 2
    assert _graph_classes(comfyui) == {"upscale": 3, "interpolate": 1}  # 16 frames, chunks of 6
    steps = [p.step for p in sent_prompts(database, job_id)]
    assert sorted(steps) == ["interpolate", "upscale_0000", "upscale_0001", "upscale_0002"]
    info = probe(Path(job.output_path or ""))
    assert (info.width, info.height, info.fps) == (128, 128, 24.0)
