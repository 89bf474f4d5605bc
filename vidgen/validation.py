"""`vidgen validate`: check manifests exactly as intake would, then print the problems in the one
format, or the plan — project, clips with mode and seed, export steps with their estimates,
the output name — and with ``--workflows`` the ComfyUI graphs as JSON.

The graphs come from the same builders and the same export plan the worker uses, so what is
printed is what ComfyUI receives; only the job ids in output names (``generate-1``, …,
``export``), the upload names ComfyUI answers with and seeds drawn at intake differ.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import replace
from datetime import date
from pathlib import Path

from stages import (
    ClipInput,
    ComfyUIStep,
    ExportPlan,
    FFmpegStep,
    build_export_plan,
    grid_of,
    step_prompts,
    upload_name,
)
from vidgen.config import Settings
from vidgen.errors import VidgenError
from vidgen.specs import GenerationMode
from watcher.manifest import (
    CancelRequest,
    Manifest,
    PriorityRequest,
    ValidationResult,
    check_file,
)
from watcher.presets import check_presets, has_preset, inbox_for
from watcher.resolve import ManifestClip
from workflows import Graph, build_image_to_video, build_text_to_video, reference_upload_name
from workflows.catalogue import ModelCatalogue

Echo = Callable[[str], None]

# What the job ids are called in printed graphs: the real ones exist once intake records them.
EXPORT_JOB = "export"


def generate_job(index: int) -> str:
    """The stand-in job id of clip ``index`` (1-based) in printed graphs."""
    return f"generate-{index}"


def validate_files(
    settings: Settings,
    files: list[Path],
    *,
    show_workflows: bool,
    echo: Echo,
    warn: Echo,
    inbox_name: str | None = None,
) -> bool:
    """True when every file is valid. Prints problems, or each file's plan (or graphs);
    ``warn`` gets notes about the check itself (stderr, so stdout stays the result). Each file
    gets the preset of the inbox named, else of the inbox it lies in.

    Raises:
        ConfigError: an inbox preset is wrong, or ``inbox_name`` names no inbox.
    """
    check_presets(settings)
    catalogue = ModelCatalogue(settings.comfyui)
    if catalogue.installed() is None:
        warn("note: no ComfyUI answers at " + ", ".join(settings.comfyui.urls) + ";")
        warn("      model names are checked when one does (intake accepts and the jobs wait)")
    all_ok = True
    for path in files:
        inbox = inbox_for(settings, path, inbox_name)
        if inbox is not None and has_preset(inbox):
            warn(f"note: {path} is checked with the preset of inbox {inbox.name}")
        result = check_file(path, settings, catalogue.installed, inbox)
        if not result.ok:
            all_ok = False
            echo(result.format(str(path)))
            continue
        if show_workflows:
            echo(json.dumps(manifest_graphs(result, settings), indent=2, ensure_ascii=False))
            _note_random_seeds(result, warn)
        else:
            _print_plan(result, settings, echo)
    return all_ok


def _note_random_seeds(result: ValidationResult, warn: Echo) -> None:
    if isinstance(result.manifest, Manifest):
        for clip in result.manifest.clips:
            if clip.seed is None and clip.spec.mode is not GenerationMode.IMPORTED:
                warn(f"note: {clip.spec.clip_name}: seed is random; drawn at intake (shown as 0)")


def _print_plan(result: ValidationResult, settings: Settings, echo: Echo) -> None:
    manifest = result.manifest
    if isinstance(manifest, CancelRequest):
        echo(f"{result.path}: ok — cancels the jobs of {manifest.target}")
        return
    if isinstance(manifest, PriorityRequest):
        echo(
            f"{result.path}: ok — the waiting jobs of {manifest.target} "
            f"become {manifest.priority.word} priority"
        )
        return
    assert manifest is not None
    echo(f"{result.path}: ok")
    priority = "" if manifest.priority is None else f", {manifest.priority.word} priority"
    echo(
        f"project: {manifest.project_name} ({manifest.display_name!r}), "
        f"{manifest.width}x{manifest.height} at {manifest.frame_rate} fps{priority}"
    )
    for index, clip in enumerate(manifest.clips, start=1):
        echo(f"  clip {index} {clip.spec.clip_name}: {_clip_line(clip, manifest)}")
    for note in manifest.notes:
        echo(f"  note: {note}")
    echo(
        f"output: {settings.outbox}/{date.today():%Y%m%d}_{manifest.project_name}"  # noqa: DTZ011
        f"_export_NNN.{manifest.export.extension}"
    )
    for clip in manifest.clips:
        variation = clip.variation
        if variation is not None and variation.number == 1 and variation.pick is None:
            columns, rows = grid_of(variation.count)
            echo(
                f"sheet: {settings.outbox}/{date.today():%Y%m%d}_{manifest.project_name}"  # noqa: DTZ011
                f"_sheet_NNN.mp4 (+ .png): the {variation.count} variations of "
                f"{clip.spec.clip_name.rsplit(' ', 1)[0]} in {columns}x{rows} tiles, "
                f"labelled by {' and '.join(variation.keys)}; the export plays the first"
            )
    try:
        plan = export_plan(manifest, settings)
    except VidgenError as exc:
        echo(f"  plan: {exc.user_message}")
        return
    for line in describe(plan):
        echo(f"  {line}")
    last = plan.steps[-1]
    if isinstance(last, FFmpegStep) and last.stream_copy and not manifest.export.deliver_as_is:
        echo(
            f"  note: quality {plan.quality.value} has no effect: the clips are copied into the "
            f"{plan.format.value} as they are, not encoded again"
        )


def _clip_line(clip: ManifestClip, manifest: Manifest) -> str:
    spec = clip.spec
    if spec.mode is GenerationMode.IMPORTED:
        return f"imported {clip.source_text}, {clip.duration_sec or 0:.2f} s"
    seed = "random (drawn at intake, then kept)" if clip.seed is None else str(clip.seed)
    seconds = spec.frames / manifest.frame_rate
    extra = (
        f", image {clip.source_text} at weight {spec.ip_adapter_weight:g}"
        if (spec.mode is GenerationMode.IMAGE_TO_VIDEO)
        else ""
    )
    if spec.prompt_schedule:
        extra += f", prompt travel over {len(spec.prompt_schedule)} keyframes"
    for lora in spec.motion_loras:
        extra += f", motion LoRA {lora.name} at {lora.strength:g}"
    return (
        f"{spec.mode.value}, seed {seed}, {spec.frames} frames ({seconds:.2f} s), "
        f"{spec.steps} steps, cfg {spec.cfg:g}, {spec.checkpoint}{extra}"
    )


def _plan_inputs(manifest: Manifest) -> list[ClipInput]:
    """The clips as the export job will find them: imported ones as their checked copy was
    probed, generated ones as ComfyUI writes them (``frames`` at the clip's rate, h264)."""
    inputs = []
    for clip in manifest.played:
        spec = clip.spec
        if spec.mode is GenerationMode.IMPORTED and clip.media is not None:
            media = replace(clip.media, path=clip.source or clip.media.path)
            inputs.append(ClipInput.from_media(media))
        else:
            duration = spec.frames / spec.frame_rate
            path = Path(f"{spec.clip_name}.mp4")
            inputs.append(
                ClipInput(path, spec.width, spec.height, spec.frame_rate, duration, spec.frames)
            )
    return inputs


def export_plan(manifest: Manifest, settings: Settings) -> ExportPlan:
    """The plan the export job of this manifest will run (in a stand-in work folder)."""
    work = settings.storage / manifest.project_name / "work" / EXPORT_JOB
    return build_export_plan(
        manifest.export,
        _plan_inputs(manifest),
        size=(manifest.width, manifest.height),
        fps=float(manifest.frame_rate),
        output=work / f"export.{manifest.export.extension}",
        work_dir=work,
        chunk_frames=settings.comfyui.upscale_chunk_frames,
    )


def manifest_graphs(result: ValidationResult, settings: Settings) -> dict[str, Graph]:
    """The graphs intake's jobs would send, by clip name and export prompt; uploads are named
    as the worker names them."""
    manifest = result.manifest
    if not isinstance(manifest, Manifest):
        return {}
    graphs: dict[str, Graph] = {}
    for index, clip in enumerate(manifest.clips, start=1):
        spec, job = clip.spec, generate_job(index)
        if spec.mode is GenerationMode.TEXT_TO_VIDEO:
            graphs[spec.clip_name] = build_text_to_video(spec, job)
        elif spec.mode is GenerationMode.IMAGE_TO_VIDEO:
            upload = reference_upload_name(job, Path(clip.source_text or "image.png"))
            graphs[spec.clip_name] = build_image_to_video(spec, job, upload)
    if manifest.export.needs_comfyui:
        for step in export_plan(manifest, settings).steps:
            if isinstance(step, ComfyUIStep):
                uploaded = upload_name(EXPORT_JOB, step)
                for prompt in step_prompts(step, EXPORT_JOB, uploaded):
                    graphs[f"export: {prompt.key}"] = prompt.graph
    return graphs


def describe(plan: ExportPlan) -> list[str]:
    """Lines for ``vidgen validate``: the output, then each step with its estimates."""
    lines = [
        f"output: {plan.shape.describe()}, {plan.format.value} {plan.quality.value}, "
        f"about {_megabytes(plan.estimated_bytes)}, about {plan.estimated_sec:.0f} s to make"
    ]
    for number, step in enumerate(plan.steps, start=1):
        if isinstance(step, FFmpegStep):
            what = " + ".join(step.details)
            lines.append(f"  {number}. ffmpeg (one run): {what} -> {step.shape.describe()}")
        else:
            width, height = step.output_size
            what = f"{step.stage} with {step.model}"
            prompts = f" in {len(step.chunks)} prompts" if len(step.chunks) > 1 else ""
            lines.append(
                f"  {number}. comfyui: {what}{prompts} -> {width}x{height}, "
                f"{step.output_frames} frames at {step.output_fps:g} fps, "
                f"h264 {'lossless' if step.lossless else 'crf 19'}"
            )
        lines[-1] += f"; about {_megabytes(step.estimated_bytes)}, {step.estimated_sec:.1f} s"
    return lines


def _megabytes(size: int) -> str:
    return f"{size / 1e6:.1f} MB"


__all__ = ["describe", "export_plan", "manifest_graphs", "validate_files"]
