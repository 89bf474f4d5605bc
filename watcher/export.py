"""The manifest's ``export`` section as an ``ExportSpec``: defaults applied, ``engine: auto``
decided (once, here, and recorded), and the checks that need the clips (transition length,
output size)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from vidgen.specs import (
    GIF_MAX_FPS,
    GIF_MAX_WIDTH,
    MAX_OUTPUT_SIDE,
    Engine,
    ExportSpec,
    InterpolateSpec,
    ModelKind,
    OutputFormat,
    Quality,
    TransitionSpec,
    TransitionType,
    UpscaleSpec,
    resolve_model_name,
)
from watcher.resolve import Context, ManifestClip, default_model, resolve_model

DEFAULT_TRANSITION_SEC = 0.5


def resolve_export(
    ctx: Context, clips: Sequence[ManifestClip], size: tuple[int, int], frame_rate: int
) -> ExportSpec:
    """Without ``export``: several clips are joined plainly, one clip is delivered as it is."""
    section = ctx.data.get("export")
    if section is None:
        return ExportSpec(deliver_as_is=len(clips) == 1)
    transition = _transition(ctx, section.get("transition") or {}, clips)
    upscale = _upscale(ctx, section["upscale"], size) if "upscale" in section else None
    interpolate = None
    if "interpolate" in section:
        interpolate = _interpolate(ctx, section["interpolate"], frame_rate)
    export = ExportSpec(
        transition=transition,
        upscale=upscale,
        interpolate=interpolate,
        format=OutputFormat(section.get("format", OutputFormat.MP4.value)),
        quality=Quality(section.get("quality", Quality.STANDARD.value)),
    )
    if export.format is OutputFormat.GIF:
        _gif_notes(ctx, export, size, frame_rate)
    return export


def _gif_notes(ctx: Context, export: ExportSpec, size: tuple[int, int], frame_rate: int) -> None:
    """What a GIF changes of what was asked, said by ``vidgen validate`` and kept as notes."""
    fps = export.interpolate.fps if export.interpolate is not None else frame_rate
    if fps > GIF_MAX_FPS:
        ctx.notes.append(
            f"gif at {fps} fps plays at {GIF_MAX_FPS} fps, frames dropped (GIF timing is in "
            f"1/100 s, and some players slow down delays under 4/100 s)"
        )
    elif export.interpolate is not None and 100 % fps:
        ctx.notes.append(
            f"gif at {fps} fps: its frames last {100 // fps} or {100 // fps + 1}/100 s in turn, "
            f"{fps} fps on average (GIF timing is in 1/100 s)"
        )
    scale = export.upscale.scale if export.upscale is not None else 1
    if size[0] * scale <= GIF_MAX_WIDTH:
        return
    if export.upscale is not None and size[0] >= GIF_MAX_WIDTH:
        ctx.notes.append(
            f"upscale has no effect on a gif: it is at most {GIF_MAX_WIDTH} px wide, and the "
            f"clips are {size[0]} px wide already"
        )
    else:
        ctx.notes.append(
            f"gif is at most {GIF_MAX_WIDTH} px wide: the {size[0] * scale} px wide frames "
            "are scaled down"
        )


def _transition(
    ctx: Context, section: Mapping[str, Any], clips: Sequence[ManifestClip]
) -> TransitionSpec:
    kind = TransitionType(section.get("type", TransitionType.NONE.value))
    duration = float(section.get("duration", DEFAULT_TRANSITION_SEC))
    if kind is TransitionType.NONE:
        if unused := [k for k in ("duration", "direction") if k in section]:
            verb = "has" if len(unused) == 1 else "have"
            ctx.notes.append(f"transition {' and '.join(unused)} {verb} no effect without a type")
        return TransitionSpec()
    if "direction" in section and kind is not TransitionType.WIPE:
        ctx.notes.append(f"transition direction has no effect on {kind.value} (wipe only)")
    if len(clips) == 1:
        ctx.notes.append("a transition has no effect on a single clip")
    known = [(c.duration_sec, c.spec.clip_name) for c in clips if c.duration_sec is not None]
    if len(clips) > 1 and known:
        shortest, name = min(known)
        if duration >= shortest:
            where = ("export", "transition", "duration" if "duration" in section else "type")
            ctx.problem(
                where,
                f"a {duration:g} s transition is as long as the shortest clip ({name}, "
                f"{shortest:g} s) or longer; make it shorter",
            )
    return TransitionSpec(
        type=kind, duration_sec=duration, direction=section.get("direction", "left")
    )


def _upscale(ctx: Context, section: Mapping[str, Any], size: tuple[int, int]) -> UpscaleSpec:
    scale = int(section.get("scale", 2))
    width, height = size[0] * scale, size[1] * scale
    if max(width, height) > MAX_OUTPUT_SIDE:
        ctx.problem(
            ("export", "upscale", "scale" if "scale" in section else "upscale"),
            f"upscaling {size[0]}x{size[1]} by {scale} gives {width}x{height}; "
            f"no side may exceed {MAX_OUTPUT_SIDE} px",
        )
    model, engine = _engine_and_model(ctx, section, ModelKind.UPSCALE, ("export", "upscale"))
    return UpscaleSpec(scale=scale, engine=engine, model=model)


def _interpolate(ctx: Context, section: Mapping[str, Any], frame_rate: int) -> InterpolateSpec:
    fps = int(section["fps"])
    if fps <= frame_rate:
        ctx.problem(
            ("export", "interpolate", "fps"),
            f"must be above the clips' frame rate ({frame_rate} fps), got {fps}",
        )
    model, engine = _engine_and_model(ctx, section, ModelKind.RIFE, ("export", "interpolate"))
    return InterpolateSpec(fps=fps, engine=engine, model=model)


def _engine_and_model(
    ctx: Context, section: Mapping[str, Any], kind: ModelKind, path: tuple[str, ...]
) -> tuple[str, Engine]:
    """``auto`` becomes comfyui when a reachable ComfyUI offers the model, ffmpeg otherwise."""
    chosen = section.get("engine", "auto")
    given = section.get("model")
    name = str(given) if given is not None else default_model(ctx, kind)
    where = (*path, "model") if given is not None else path
    stage = path[-1]
    if chosen == Engine.FFMPEG.value:
        return resolve_model(ctx, kind, name, None), Engine.FFMPEG
    if chosen == Engine.COMFYUI.value:
        if ctx.models is None:
            ctx.notes.append(
                f"{stage}: no ComfyUI is reachable now, so '{name}' was not checked; "
                "the export waits for a backend"
            )
        return resolve_model(ctx, kind, name, where), Engine.COMFYUI
    offered = (
        ctx.models is not None and resolve_model_name(name, ctx.models.names(kind)) is not None
    )
    if offered:
        ctx.notes.append(f"{stage}: engine auto → comfyui ({name})")
        return resolve_model(ctx, kind, name, where), Engine.COMFYUI
    reason = "no ComfyUI is reachable" if ctx.models is None else f"ComfyUI does not offer {name}"
    fallback = "lanczos scaling" if kind is ModelKind.UPSCALE else "minterpolate"
    ctx.notes.append(f"{stage}: engine auto → ffmpeg ({fallback}): {reason}")
    return resolve_model(ctx, kind, name, None), Engine.FFMPEG
