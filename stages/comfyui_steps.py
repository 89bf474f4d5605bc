"""The ComfyUI steps of an export plan (Real-ESRGAN, RIFE) and the one function that turns such a
step into the prompts it sends.

The export job sends what :func:`step_prompts` returns and ``vidgen validate --workflows``
prints the same, so what validate shows is what ComfyUI receives (up to the upload's name and
the job id in output names).
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path

from stages import encode, interpolate, upscale
from stages.shapes import VideoShape
from vidgen.specs import Engine, InterpolateSpec, Quality, UpscaleSpec
from workflows import (
    FrameChunk,
    Graph,
    build_interpolate,
    build_upscale,
    interpolated_frame_count,
    plan_chunks,
    plan_interpolation,
)

# Lossless h264 of random-weight frames (noise) took 0.4-0.7 bytes a pixel; generated pictures less.
LOSSLESS_BYTES_PER_PIXEL = 1.0
# ComfyUI refuses uploads over --max-upload-size (100 MB by default) and the next stage uploads
# this step's output, so a bigger one stays at crf 19 (a third of the size or less).
LOSSLESS_MAX_BYTES = 50_000_000

__all__ = [
    "ComfyUIStep",
    "StepPrompt",
    "interpolate_step",
    "step_prompts",
    "upload_name",
    "upscale_step",
]


@dataclass(frozen=True, slots=True)
class ComfyUIStep:
    """One ComfyUI stage: upload ``input``, run its prompts, leave the result video in ``output``.

    The result holds ``output_frames`` frames of ``output_size`` at ``output_fps``, in h264,
    lossless (crf 0) when ``lossless``. Upscale: every
    frame ``scale`` times larger (2x = the 4x model, then half size), same count and rate, made in
    ``chunks`` of frames and joined. Interpolate: RIFE with ``multiplier``, i.e.
    ``(n-1)*multiplier+1`` frames written at ``input fps * multiplier``; the next ffmpeg step
    holds the last frame and resamples to ``target_fps``.
    """

    stage: str  # "upscale" | "interpolate"
    model: str
    input: Path
    output: Path
    input_shape: VideoShape
    scale: int
    multiplier: int
    target_fps: float
    chunks: tuple[FrameChunk, ...]
    output_size: tuple[int, int]
    output_frames: int
    output_fps: float
    estimated_sec: float
    estimated_bytes: int
    lossless: bool


@dataclass(frozen=True, slots=True)
class StepPrompt:
    """One prompt of a ComfyUI step: ``key`` names it among the job's prompts, ``output`` is
    where its video is saved."""

    key: str
    graph: Graph
    output: Path


def upscale_step(
    model: str, scale: int, source: Path, shape: VideoShape, output: Path, chunk_frames: int
) -> ComfyUIStep:
    """Real-ESRGAN ``scale``x on ``source``, in chunks of at most ``chunk_frames`` frames."""
    out = replace(shape, width=shape.width * scale, height=shape.height * scale)
    lossless, size = _intermediate(out.width * out.height, shape.frame_count, shape.fps)
    return ComfyUIStep(
        stage="upscale",
        model=model,
        input=source,
        output=output,
        input_shape=shape,
        scale=scale,
        multiplier=1,
        target_fps=shape.fps,
        chunks=tuple(plan_chunks(shape.frame_count, chunk_frames)),
        output_size=(out.width, out.height),
        output_frames=shape.frame_count,
        output_fps=shape.fps,
        estimated_sec=upscale.esrgan_cost_sec(shape.mpx_frames),
        estimated_bytes=size,
        lossless=lossless,
    )


def interpolate_step(
    model: str, target_fps: float, source: Path, shape: VideoShape, output: Path
) -> ComfyUIStep:
    """RIFE from ``shape.fps`` towards ``target_fps`` on ``source``."""
    plan = plan_interpolation(shape.fps, target_fps)
    frames = interpolated_frame_count(shape.frame_count, plan.multiplier)
    lossless, size = _intermediate(shape.width * shape.height, frames, plan.output_fps)
    return ComfyUIStep(
        stage="interpolate",
        model=model,
        input=source,
        output=output,
        input_shape=shape,
        scale=1,
        multiplier=plan.multiplier,
        target_fps=target_fps,
        chunks=(),
        output_size=(shape.width, shape.height),
        output_frames=frames,
        output_fps=plan.output_fps,
        estimated_sec=interpolate.rife_cost_sec(shape.width * shape.height * frames / 1e6),
        estimated_bytes=size,
        lossless=lossless,
    )


def _intermediate(pixels: int, frames: int, fps: float) -> tuple[bool, int]:
    """Whether a step's output is written lossless, and its estimated size."""
    lossless = round(LOSSLESS_BYTES_PER_PIXEL * pixels * frames)
    if lossless <= LOSSLESS_MAX_BYTES:
        return True, lossless
    return False, encode.encoded_bytes(
        None, Quality.STANDARD, pixels=pixels, frames=frames, fps=fps
    )


def upload_name(job_id: str, step: ComfyUIStep) -> str:
    """The name the step's input is uploaded under (ComfyUI may answer with another)."""
    return f"vidgen-{job_id}-{step.stage}{step.input.suffix}"


def step_prompts(step: ComfyUIStep, job_id: str, video_name: str) -> list[StepPrompt]:
    """The prompts ``step`` sends for job ``job_id``, its input uploaded as ``video_name``."""
    fps = step.input_shape.fps
    if step.stage == "upscale":
        spec = UpscaleSpec(scale=step.scale, engine=Engine.COMFYUI, model=step.model)
        return [
            StepPrompt(
                f"upscale_{chunk.index:04d}",
                build_upscale(video_name, spec, chunk, fps, job_id, lossless=step.lossless),
                step.output.with_name(f"{step.output.stem}_{chunk.index:04d}.mp4"),
            )
            for chunk in step.chunks
        ]
    spec_fps = InterpolateSpec(fps=round(step.target_fps), engine=Engine.COMFYUI, model=step.model)
    return [
        StepPrompt(
            "interpolate",
            build_interpolate(video_name, spec_fps, fps, job_id, lossless=step.lossless),
            step.output,
        )
    ]
