"""`vidgen validate`: check manifests exactly as intake would, then print the problems in the one
format, or the plan — project, clips with mode and seed, export steps with their estimates,
the output name — and with ``--workflows`` the exact ComfyUI graphs as JSON."""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import date
from pathlib import Path
from typing import Any

from stages.export_plan import ExportPlan, build_export_plan, describe
from stages.ffmpeg_runner import probe
from stages.merge import ClipInput
from vidgen.config import Settings
from vidgen.errors import VidgenError
from vidgen.specs import Engine, ExportSpec, GenerationMode
from watcher.manifest import CancelRequest, Manifest, ValidationResult, check_file
from watcher.resolve import ManifestClip
from workflows import (
    build_image_to_video,
    build_interpolate,
    build_text_to_video,
    build_upscale,
    plan_chunks,
)
from workflows.catalogue import ModelCatalogue

Echo = Callable[[str], None]


def validate_files(
    settings: Settings, files: list[Path], *, show_workflows: bool, echo: Echo, warn: Echo
) -> bool:
    """True when every file is valid. Prints problems, or each file's plan (or graphs);
    ``warn`` gets notes about the check itself (stderr, so stdout stays the result)."""
    catalogue = ModelCatalogue(settings.comfyui)
    if catalogue.installed() is None:
        warn("note: no ComfyUI answers at " + ", ".join(settings.comfyui.urls) + ";")
        warn("      model names are checked when one does (intake accepts and the jobs wait)")
    all_ok = True
    for path in files:
        result = check_file(path, settings, catalogue.installed)
        if not result.ok:
            all_ok = False
            echo(result.format(str(path)))
            continue
        if show_workflows:
            echo(json.dumps(_graphs(result, settings), indent=2, ensure_ascii=False))
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
    assert manifest is not None
    echo(f"{result.path}: ok")
    echo(
        f"project: {manifest.project_name} ({manifest.display_name!r}), "
        f"{manifest.width}x{manifest.height} at {manifest.frame_rate} fps"
    )
    for index, clip in enumerate(manifest.clips, start=1):
        echo(f"  clip {index} {clip.spec.clip_name}: {_clip_line(clip, manifest)}")
    for note in manifest.notes:
        echo(f"  note: {note}")
    extension = "mp4" if manifest.export.deliver_as_is else manifest.export.format.extension
    echo(
        f"output: {settings.outbox}/{date.today():%Y%m%d}_{manifest.project_name}"  # noqa: DTZ011
        f"_export_NNN.{extension}"
    )
    try:
        for line in describe(_plan(manifest, settings)):
            echo(f"  {line}")
    except VidgenError as exc:
        echo(f"  plan: {exc.user_message}")


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
    return (
        f"{spec.mode.value}, seed {seed}, {spec.frames} frames ({seconds:.2f} s), "
        f"{spec.steps} steps, cfg {spec.cfg:g}, {spec.checkpoint}{extra}"
    )


def _plan_inputs(manifest: Manifest) -> list[ClipInput]:
    inputs = []
    for clip in manifest.clips:
        if clip.spec.mode is GenerationMode.IMPORTED and clip.source is not None:
            inputs.append(ClipInput.from_media(probe(clip.source)))
        else:
            spec = clip.spec
            inputs.append(
                ClipInput(
                    Path(f"{spec.clip_name}.mp4"),
                    spec.width,
                    spec.height,
                    float(manifest.frame_rate),
                    spec.frames / manifest.frame_rate,
                    spec.frames,
                )
            )
    return inputs


def _plan(manifest: Manifest, settings: Settings) -> ExportPlan:
    extension = "mp4" if manifest.export.deliver_as_is else manifest.export.format.extension
    work = settings.storage / manifest.project_name / "work" / "plan"
    return build_export_plan(
        manifest.export,
        _plan_inputs(manifest),
        size=(manifest.width, manifest.height),
        fps=float(manifest.frame_rate),
        output=work / f"export.{extension}",
        work_dir=work,
    )


def _graphs(result: ValidationResult, settings: Settings) -> dict[str, Any]:
    """The graphs intake's jobs would send; uploads are named as the worker names them."""
    manifest = result.manifest
    if not isinstance(manifest, Manifest):
        return {}
    graphs: dict[str, Any] = {}
    for index, clip in enumerate(manifest.clips, start=1):
        spec = clip.spec
        job = f"JOB-OF-CLIP{index}"  # the real job id is known once intake records it
        if spec.mode is GenerationMode.TEXT_TO_VIDEO:
            graphs[spec.clip_name] = build_text_to_video(spec, job)
        elif spec.mode is GenerationMode.IMAGE_TO_VIDEO:
            upload = f"vidgen-{job}{Path(clip.source_text or 'image.png').suffix}"
            graphs[spec.clip_name] = build_image_to_video(spec, job, upload)
    graphs.update(_export_graphs(manifest.export, manifest, settings))
    return graphs


def _export_graphs(export: ExportSpec, manifest: Manifest, settings: Settings) -> dict[str, Any]:
    graphs: dict[str, Any] = {}
    frames = sum(c.spec.frames for c in manifest.clips)
    if export.upscale is not None and export.upscale.engine is Engine.COMFYUI:
        for chunk in plan_chunks(frames, settings.comfyui.upscale_chunk_frames):
            graphs[f"export: upscale chunk {chunk.index + 1}"] = build_upscale(
                "MERGED-VIDEO.mp4", export.upscale, chunk, manifest.frame_rate, "EXPORT-JOB"
            )
    if export.interpolate is not None and export.interpolate.engine is Engine.COMFYUI:
        graphs["export: interpolate"] = build_interpolate(
            "MERGED-VIDEO.mp4", export.interpolate, manifest.frame_rate, "EXPORT-JOB"
        )
    return graphs
