"""The export job: the project's ready clips → the finished video in the outbox.

It runs the steps ``stages.export_plan`` plans (each one ffmpeg run, or one ComfyUI stage for
Real-ESRGAN or RIFE, whose prompts ``stages.comfyui_steps.step_prompts`` gives), reports progress
weighted by each step's expected cost, and publishes the result under the naming convention. A
failure leaves ``{date}_{project}_error_{NNN}.txt`` in the outbox saying what failed and what to
do.
"""

from __future__ import annotations

import contextlib
import errno
import logging
import threading
from collections.abc import Callable
from dataclasses import replace
from functools import partial
from pathlib import Path

from typing_extensions import override

from stages.comfyui_steps import ComfyUIStep, StepPrompt, step_prompts, upload_name
from stages.export_plan import ExportPlan, FFmpegStep, Step, build_export_plan
from stages.merge import ClipInput, concat_list_text
from stages.prompts import collect, ensure_prompt, prompt_client
from stages.recipe import publish_with_recipe, recipe_path
from stages.sheet import SheetRun, SheetTile, find_font, sheet_run
from stages.worker import JobContext, Stage
from vidgen.db import jobs
from vidgen.db.jobs import ClipFile
from vidgen.db.models import ClipStatus
from vidgen.errors import ComfyUIError, JobCancelled, StorageError, VidgenError
from vidgen.ffmpeg import file_arg, probe, run
from vidgen.naming import FileType, allocate_path, publish
from vidgen.specs import SheetSpec, variation_label
from workflows import ComfyUIClient, Graph, PromptProgress

log = logging.getLogger(__name__)

_Report = Callable[[float], None]

_PUBLISH_SHARE = 0.98  # the last 2 % are publishing the file


class ExportStage(Stage):
    """Runs export jobs; ``client`` is the backend for ComfyUI steps (None on a CPU worker)."""

    def __init__(self, client: ComfyUIClient | None) -> None:
        self.client = client

    @override
    def prepare(self, context: JobContext) -> bool:
        """Nothing to queue ahead of time: each ComfyUI step needs the one before it."""
        return False

    @override
    def run(self, context: JobContext) -> None:
        recorded = context.job.outputs.export
        if recorded and Path(recorded).is_file():
            self._complete(context, Path(recorded))
            return
        files = self._files(context)
        clips = [ClipInput.from_media(probe(Path(f.file_path or ""))) for f in files]
        plan = self._plan(context, context.work_dir, clips)
        context.note(f"export plan: {len(plan.steps)} step(s), about {plan.estimated_sec:.0f} s")
        for index, step in enumerate(plan.steps):
            self._run_step(context, plan, index, step)
        request = context.job.export
        sheets = [
            self._make_sheet(context, number, sheet, files, clips)
            for number, sheet in enumerate(request.sheets, start=1)
        ]
        self._publish(context, plan, Path(request.outbox), sheets)

    @override
    def space_needed(self, context: JobContext) -> list[tuple[Path, int]]:
        """Every step's file in storage, and the video in the outbox."""
        try:
            files = self._files(context)
            clips = [ClipInput.from_media(probe(Path(f.file_path or ""))) for f in files]
            plan = self._plan(context, context.work_path, clips)
        except VidgenError:
            return []
        work = sum(step.estimated_bytes for step in plan.steps)
        return [(context.work_path, work), (Path(context.job.export.outbox), plan.estimated_bytes)]

    def _plan(self, context: JobContext, work_dir: Path, clips: list[ClipInput]) -> ExportPlan:
        request = context.job.export
        return build_export_plan(
            request.export,
            request.played(clips),
            size=request.size,
            fps=float(request.frame_rate),
            output=work_dir / f"export.{request.export.extension}",
            work_dir=work_dir,
            chunk_frames=context.settings.comfyui.upscale_chunk_frames,
        )

    @override
    def on_failure(self, context: JobContext, message: str) -> None:
        write_error_file(context, Path(context.job.export.outbox), message)

    def _files(self, context: JobContext) -> list[ClipFile]:
        found = jobs.clip_files(context.database, context.job.input_clip_ids)
        if len(found) != len(context.job.input_clip_ids):
            raise StorageError("a clip of this export is no longer in the database")
        for clip in found:
            if clip.clip_status in (ClipStatus.FAILED, ClipStatus.CANCELLED):
                raise VidgenError(f"clip {clip.clip_name} failed: {_reason(clip)}")
            if not clip.file_path or not Path(clip.file_path).is_file():
                raise StorageError(f"the video of clip {clip.clip_name} is missing from storage")
        return found

    def _make_sheet(
        self,
        context: JobContext,
        number: int,
        sheet: SheetSpec,
        files: list[jobs.ClipFile],
        clips: list[ClipInput],
    ) -> SheetRun:
        """The contact sheet of one clip's variations, in the work folder."""
        shown = [files[p] for p in sheet.positions]
        context.progress(100 * _PUBLISH_SHARE, f"making contact sheet {number}")
        first = clips[sheet.positions[0]]
        planned = sheet_run(
            [
                SheetTile(
                    Path(f.file_path or ""), variation_label(sheet.keys, f.seed, f.cfg, f.steps)
                )
                for f in shown
            ],
            size=(first.width, first.height),
            fps=first.fps,
            frames=min(clips[p].frame_count for p in sheet.positions),
            video=context.work_dir / f"sheet_{number}.mp4",
            still=context.work_dir / f"sheet_{number}.png",
            font=find_font(),
        )
        run(
            planned.args,
            expected_duration_sec=planned.duration_sec,
            cancel=context.cancel,
            output=planned.video,
        )
        context.check_cancelled()
        return planned

    def _run_step(self, context: JobContext, plan: ExportPlan, index: int, step: Step) -> None:
        def report(fraction: float) -> None:
            percent = 100 * _PUBLISH_SHARE * plan.progress(index, fraction)
            # A cancel reaches the running step through context.cancel, which it watches.
            with contextlib.suppress(JobCancelled):
                context.progress(percent, _label(step, index, len(plan.steps)))

        report(0.0)
        if isinstance(step, FFmpegStep):
            execute_ffmpeg_step(step, cancel=context.cancel, on_progress=report)
        else:
            self._run_comfyui_step(context, step, report)
        context.check_cancelled()

    def _run_comfyui_step(self, context: JobContext, step: ComfyUIStep, report: _Report) -> None:
        """Each prompt of the step in turn (found again in ComfyUI after a crash, else sent),
        its video downloaded; an upscale's chunks are then joined in order."""
        client = self.client
        if client is None:
            raise ComfyUIError(f"the {step.stage} step needs ComfyUI, but this worker has none")
        graphs = _UploadedGraphs(client, context.job.id, step)
        prompts = step_prompts(step, context.job.id, "")
        parts = []
        for number, planned in enumerate(prompts):
            low, high = number / len(prompts), (number + 1) / len(prompts)
            sent = ensure_prompt(client, context, planned.key, partial(graphs.graph, planned.key))

            def on_progress(progress: PromptProgress, low: float = low, high: float = high) -> None:
                report(low + (high - low) * progress.fraction)

            result = collect(client, context, sent, on_progress)
            holder = prompt_client(client, context, sent)
            parts.append(holder.download_video(result, planned.output.with_suffix("")))
        if step.stage == "upscale":
            _join_parts(context, parts, step.output)
        elif parts[0] != step.output:
            parts[0].replace(step.output)

    def _publish(
        self, context: JobContext, plan: ExportPlan, outbox: Path, sheets: list[SheetRun]
    ) -> None:
        context.progress(100 * _PUBLISH_SHARE, "writing the video into the outbox")
        extension = plan.output.suffix.lstrip(".")
        project = context.job.project_name
        named = context.job.outputs
        if named.export:
            # An earlier attempt named the files and died before they were all in place: the
            # same names, so no number of the convention is skipped.
            target, sheet_targets = Path(named.export), [Path(s) for s in named.sheets]
            ours = True
        else:
            sheet_targets = [
                allocate_path(context.database, outbox, project, FileType.SHEET, "mp4")
                for _ in sheets
            ]
            target = allocate_path(context.database, outbox, project, FileType.EXPORT, extension)
            outputs = replace(
                named,
                export=str(target),
                recipe=str(recipe_path(target)),
                sheets=tuple(str(s) for s in sheet_targets),
            )
            ours = jobs.record_outputs(
                context.database, context.job.id, context.job.worker_id, outputs
            )
        if ours:
            for sheet, sheet_target in zip(sheets, sheet_targets, strict=True):
                publish(sheet.still, sheet_target.with_suffix(".png"))
                publish(sheet.video, sheet_target)
            publish_with_recipe(context, plan.output, target)  # the video and its NAME.json
            self._complete(context, target)

    def _complete(self, context: JobContext, target: Path) -> None:
        info = probe(target)
        jobs.complete_export(context.database, context.job.id, context.job.worker_id, str(target))
        context.note(
            f"finished: {target.name} ({info.width}x{info.height}, {info.fps:g} fps, "
            f"{info.duration_sec:.2f} s)"
        )


class _UploadedGraphs:
    """A step's graphs by prompt key, its input uploaded on the first look (a step whose
    prompts all ran before a crash uploads nothing)."""

    def __init__(self, client: ComfyUIClient, job_id: str, step: ComfyUIStep) -> None:
        self._client = client
        self._job_id = job_id
        self._step = step
        self._prompts: dict[str, StepPrompt] | None = None

    def graph(self, key: str) -> Graph:
        if self._prompts is None:
            name = self._client.upload(self._step.input, upload_name(self._job_id, self._step))
            self._prompts = {p.key: p for p in step_prompts(self._step, self._job_id, name)}
        return self._prompts[key].graph


def _join_parts(context: JobContext, parts: list[Path], output: Path) -> None:
    """The upscaled chunks in order, packets copied (they share every codec setting)."""
    listing = context.work_dir / "upscaled_parts.txt"
    _write_list(listing, concat_list_text(parts))
    join = ["-f", "concat", "-safe", "0", "-i", file_arg(listing), "-c", "copy", "-an"]
    try:
        run([*join, file_arg(output)], expected_duration_sec=0.0, output=output)
    finally:
        listing.unlink(missing_ok=True)


def execute_ffmpeg_step(
    step: FFmpegStep,
    *,
    cancel: threading.Event | None = None,
    on_progress: Callable[[float], None] | None = None,
) -> None:
    """Run one planned ffmpeg step, writing ``step.output`` (removed again on failure or cancel).

    Raises:
        JobCancelled, StorageError, FFmpegError: as :func:`vidgen.ffmpeg.run`.
    """
    if step.concat_list is not None:
        _write_list(step.concat_list, step.concat_text)
    try:
        run(
            step.args,
            expected_duration_sec=step.shape.duration_sec,
            on_progress=on_progress,
            cancel=cancel,
            output=step.output,
        )
    finally:
        if step.concat_list is not None:
            step.concat_list.unlink(missing_ok=True)


def _write_list(path: Path, text: str) -> None:
    try:
        path.write_text(text, encoding="utf-8")
    except OSError as exc:
        path.unlink(missing_ok=True)
        if exc.errno == errno.ENOSPC:
            raise StorageError(f"the disk holding {path.parent} is full") from exc
        raise StorageError(f"cannot write {path.name} in {path.parent}: {exc.strerror}") from exc


def _reason(clip: ClipFile) -> str:
    if clip.error_message:
        return clip.error_message
    return "it was cancelled" if clip.clip_status == ClipStatus.CANCELLED else "it did not finish"


def _label(step: Step, index: int, count: int) -> str:
    if isinstance(step, FFmpegStep):
        what = " + ".join(step.stages)
    else:
        what = f"{step.stage} in ComfyUI ({step.model})"
    return f"step {index + 1}/{count}: {what}" if count > 1 else what


def write_error_file(context: JobContext, outbox: Path, message: str) -> Path | None:
    """``{date}_{projectName}_error_{NNN}.txt`` in the outbox: what failed and what to do.

    Written once per failure: its name is recorded first, so an attempt that died after writing
    it leaves the next one nothing to write; None when the job is no longer ours."""
    written = context.job.outputs.error
    if written is not None and Path(written).is_file():
        return Path(written)
    target = allocate_path(
        context.database, outbox, context.job.project_name, FileType.ERROR, "txt"
    )
    outputs = replace(context.job.outputs, error=str(target))
    if not jobs.record_outputs(context.database, context.job.id, context.job.worker_id, outputs):
        return None
    text = (
        f"vidgen could not finish the video of project {context.job.project_name}.\n\n"
        f"What failed: {context.shown.text(message)}\n"
        f"Job: {context.job.id}\n\n"
        "What you can do:\n"
        "- Fix what the message names (a clip, a setting, ComfyUI, disk space) and drop the\n"
        "  manifest into the inbox again: clips that are already made are reused.\n"
        "- The status page shows the job's log.\n"
    )
    partial = context.work_dir / "error.txt"
    partial.write_text(text, encoding="utf-8")
    return publish(partial, target)
