"""The export job: the project's ready clips → the finished video in the outbox.

It runs the steps ``stages.export_plan`` plans (each one ffmpeg run, or one ComfyUI stage for
Real-ESRGAN or RIFE), reports progress weighted by each step's expected cost, and publishes the
result under the naming convention. A failure leaves ``{date}_{project}_error_{NNN}.txt`` in the
outbox saying what failed and what to do.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Callable
from pathlib import Path
from typing import Any

from stages.export_plan import (
    ComfyUIStep,
    ExportPlan,
    FFmpegStep,
    build_export_plan,
    execute_ffmpeg_step,
)
from stages.ffmpeg_runner import file_arg, probe, run
from stages.generate import follow_prompt
from stages.merge import ClipInput, concat_list_text
from stages.worker import JobContext
from vidgen.db import jobs
from vidgen.errors import ComfyUIError, JobCancelled, StorageError
from vidgen.naming import FileType, allocate_path, publish
from vidgen.specs import ExportSpec, InterpolateSpec, UpscaleSpec
from workflows import build_interpolate, build_upscale, plan_chunks
from workflows.comfyui_client import ComfyUIClient
from workflows.comfyui_types import PromptProgress

log = logging.getLogger(__name__)

_Report = Callable[[float], None]

_PUBLISH_SHARE = 0.98  # the last 2 % are publishing the file


class ExportStage:
    """Runs export jobs; ``client`` is the backend for ComfyUI steps (None on a CPU worker)."""

    def __init__(self, client: ComfyUIClient | None) -> None:
        self.client = client

    def prepare(self, context: JobContext) -> None:
        """Nothing to queue ahead of time."""

    def run(self, context: JobContext) -> None:
        settings = jobs.job_settings(context.database, context.job.id)
        recorded = (settings.get("outputs") or {}).get("export")
        if recorded and Path(recorded).is_file():
            self._complete(context, Path(recorded))
            return
        spec = ExportSpec.from_json(settings["export"])
        clips = self._inputs(context)
        extension = "mp4" if spec.deliver_as_is else spec.format.extension
        plan = build_export_plan(
            spec,
            clips,
            size=_size(settings.get("resolution"), clips[0]),
            fps=float(settings.get("frameRate") or clips[0].fps),
            output=context.work_dir / f"export.{extension}",
            work_dir=context.work_dir,
        )
        context.note(f"export plan: {len(plan.steps)} step(s), about {plan.estimated_sec:.0f} s")
        for index, step in enumerate(plan.steps):
            self._run_step(context, plan, index, step)
        self._publish(context, plan, Path(settings["outbox"]))

    def on_failure(self, context: JobContext, message: str) -> None:
        settings = jobs.job_settings(context.database, context.job.id)
        outbox = Path(settings.get("outbox") or context.settings.outbox)
        write_error_file(context, outbox, message)

    def _inputs(self, context: JobContext) -> list[ClipInput]:
        inputs = []
        for clip in jobs.clip_files(context.database, context.job.input_clip_ids):
            if not clip.file_path or not Path(clip.file_path).is_file():
                raise StorageError(f"the video of clip {clip.clip_name} is missing from storage")
            inputs.append(ClipInput.from_media(probe(Path(clip.file_path))))
        return inputs

    def _run_step(self, context: JobContext, plan: ExportPlan, index: int, step: object) -> None:
        def report(fraction: float) -> None:
            percent = 100 * _PUBLISH_SHARE * plan.progress(index, fraction)
            # A cancel reaches the running step through context.cancel, which it watches.
            with contextlib.suppress(JobCancelled):
                context.progress(percent, _label(step, index, len(plan.steps)))

        report(0.0)
        if isinstance(step, FFmpegStep):
            execute_ffmpeg_step(step, cancel=context.cancel, on_progress=report)
        elif isinstance(step, ComfyUIStep):
            self._run_comfyui_step(context, step, report)
        context.check_cancelled()

    def _run_comfyui_step(self, context: JobContext, step: ComfyUIStep, report: _Report) -> None:
        if self.client is None:
            raise ComfyUIError(f"the {step.stage} step needs ComfyUI, but this worker has none")
        name = f"vidgen-{context.job.id}-{step.stage}{step.input.suffix}"
        uploaded = self.client.upload(step.input, name)
        if step.stage == "upscale":
            self._upscale(context, step, uploaded, report)
        else:
            spec = InterpolateSpec(fps=round(step.output_fps), model=step.model)
            graph = build_interpolate(uploaded, spec, step.input_shape.fps, context.job.id)
            self._prompt_to_file(context, graph, step.output, report, (0.0, 1.0))

    def _upscale(
        self, context: JobContext, step: ComfyUIStep, uploaded: str, report: _Report
    ) -> None:
        """Real-ESRGAN in chunks of frames (a 12 GB card never holds them all), then joined."""
        chunks = plan_chunks(
            step.input_shape.frame_count, context.settings.comfyui.upscale_chunk_frames
        )
        spec = UpscaleSpec(scale=step.scale, model=step.model)
        parts = []
        for chunk in chunks:
            graph = build_upscale(uploaded, spec, chunk, step.input_shape.fps, context.job.id)
            part = context.work_dir / f"upscaled_{chunk.index:04d}.mp4"
            share = (chunk.index / len(chunks), (chunk.index + 1) / len(chunks))
            self._prompt_to_file(context, graph, part, report, share)
            parts.append(part)
        listing = context.work_dir / "upscaled_parts.txt"
        listing.write_text(concat_list_text(parts), encoding="utf-8")
        join = ["-f", "concat", "-safe", "0", "-i", file_arg(listing), "-c", "copy", "-an"]
        run([*join, file_arg(step.output)], expected_duration_sec=0.0, output=step.output)

    def _prompt_to_file(
        self,
        context: JobContext,
        graph: dict[str, Any],
        dest: Path,
        report: _Report,
        share: tuple[float, float],
    ) -> None:
        if self.client is None:
            raise ComfyUIError("this worker has no ComfyUI backend")
        prompt_id = f"{context.job.id}-{dest.stem}-{context.job.attempts}"
        self.client.queue_prompt(graph, prompt_id)

        def on_progress(_context: JobContext, progress: PromptProgress) -> None:
            report(share[0] + (share[1] - share[0]) * progress.fraction)

        result = follow_prompt(self.client, context, prompt_id, on_progress)
        videos = [o for o in result.outputs if o.filename.lower().endswith(".mp4")]
        if not videos:
            raise ComfyUIError(f"ComfyUI finished prompt {prompt_id} but wrote no video")
        self.client.download(videos[0], dest)

    def _publish(self, context: JobContext, plan: ExportPlan, outbox: Path) -> None:
        context.progress(100 * _PUBLISH_SHARE, "writing the video into the outbox")
        extension = plan.output.suffix.lstrip(".")
        target = allocate_path(
            context.database, outbox, context.job.project_name, FileType.EXPORT, extension
        )
        if jobs.record_outputs(
            context.database, context.job.id, context.job.worker_id, {"export": str(target)}
        ):
            publish(plan.output, target)
            self._complete(context, target)

    def _complete(self, context: JobContext, target: Path) -> None:
        info = probe(target)
        jobs.complete_export(
            context.database, context.job.id, context.job.worker_id, str(target), target.name
        )
        context.note(
            f"finished: {target.name} ({info.width}x{info.height}, {info.fps:g} fps, "
            f"{info.duration_sec:.2f} s)"
        )


def _label(step: object, index: int, count: int) -> str:
    if isinstance(step, FFmpegStep):
        what = " + ".join(step.stages)
    elif isinstance(step, ComfyUIStep):
        what = f"{step.stage} in ComfyUI ({step.model})"
    else:
        what = "working"
    return f"step {index + 1}/{count}: {what}" if count > 1 else what


def _size(resolution: object, first: ClipInput) -> tuple[int, int]:
    if isinstance(resolution, str) and "x" in resolution:
        width, height = resolution.split("x", 1)
        return int(width), int(height)
    return first.width, first.height


def write_error_file(context: JobContext, outbox: Path, message: str) -> Path:
    """``{date}_{projectName}_error_{NNN}.txt`` in the outbox: what failed and what to do."""
    target = allocate_path(
        context.database, outbox, context.job.project_name, FileType.ERROR, "txt"
    )
    text = (
        f"vidgen could not finish the video of project {context.job.project_name}.\n\n"
        f"What failed: {message}\n"
        f"Job: {context.job.id}\n\n"
        "What you can do:\n"
        "- Fix what the message names (a clip, a setting, ComfyUI, disk space) and drop the\n"
        "  manifest into the inbox again: clips that are already made are reused.\n"
        "- The status page shows the job's log.\n"
    )
    partial = context.work_dir / "error.txt"
    partial.write_text(text, encoding="utf-8")
    return publish(partial, target)
