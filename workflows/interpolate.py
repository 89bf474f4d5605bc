"""Interpolate: RIFE frame interpolation of an uploaded video (docs/architecture.md).

Shape (docs/comfyui.md#nodes-vidgen-builds-with, captured/graph_rife_interpolate_video.json)::

    VHS_LoadVideo(uploaded name) -> RIFE VFI(multiplier)
    -> VHS_VideoCombine(frame_rate = source fps x multiplier)

RIFE's multiplier is a whole number: ``ceil(target / source)`` (8 -> 24 fps is 3; 8 -> 30 is 4).
It returns ``(n - 1) * multiplier + 1`` frames (16 -> 46), each source frame followed by its
in-betweens, then the last frame, so at ``source * multiplier`` fps the result is one source frame
interval short. The caller therefore, in one FFmpeg run over the graph's output,

* holds the last frame for ``1 / source_fps`` seconds, so the clip keeps its duration, and
* resamples to the target fps when it is no whole multiple of the source (``fps`` filter).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from fractions import Fraction

from vidgen.specs import InterpolateSpec, resolve_model_name
from workflows.graph import Graph, GraphBuilder, add_video_combine, filename_prefix, link
from workflows.schema import bundled_object_info, choices_of, input_spec

# RIFE VFI's remaining widgets, all required: the server fills in no defaults (see
# "Submitting a prompt" in docs/comfyui.md). float32 and no torch.compile are the conservative
# choices that ran in the real runs (docs/comfyui.md#measured).
CLEAR_CACHE_AFTER_N_FRAMES = 10
DTYPE = "float32"
BATCH_SIZE = 1


@dataclass(frozen=True, slots=True)
class InterpolationPlan:
    """How a video at ``source_fps`` reaches ``target_fps`` through RIFE."""

    source_fps: float
    target_fps: float
    multiplier: int

    @property
    def output_fps(self) -> float:
        """The rate the graph writes its video at: source x multiplier."""
        return float(self.source_fps * self.multiplier)


def plan_interpolation(source_fps: float, target_fps: float) -> InterpolationPlan:
    """The whole multiplier that reaches at least ``target_fps`` from ``source_fps``.

    Raises:
        ValueError: a rate that is not positive.
    """
    if source_fps <= 0 or target_fps <= 0:
        raise ValueError(f"frame rates must be positive, got {source_fps} and {target_fps}")
    # Fractions keep 24 / 8 exactly 3, where float division could land a hair above it.
    multiplier = max(1, math.ceil(Fraction(target_fps) / Fraction(source_fps)))
    return InterpolationPlan(source_fps, target_fps, multiplier)


def interpolated_frame_count(frame_count: int, multiplier: int) -> int:
    """Frames RIFE returns for ``frame_count`` input frames: ``(n - 1) * multiplier + 1``."""
    return (frame_count - 1) * multiplier + 1


def build_interpolate(
    video_name: str,
    spec: InterpolateSpec,
    source_fps: float,
    job_id: str,
    *,
    lossless: bool = False,
) -> Graph:
    """The interpolation graph; ``video_name`` is the uploaded video, ``source_fps`` its rate;
    ``lossless`` writes h264 at crf 0 instead of 19."""
    plan = plan_interpolation(source_fps, spec.fps)
    builder = GraphBuilder()
    video = builder.add(
        "VHS_LoadVideo",
        {
            "video": video_name,
            "force_rate": 0,
            "custom_width": 0,
            "custom_height": 0,
            "frame_load_cap": 0,  # 0 = all frames
            "skip_first_frames": 0,
            "select_every_nth": 1,
            "format": "None",
        },
    )
    rife = builder.add(
        "RIFE VFI",
        {
            "ckpt_name": rife_checkpoint(spec.model),
            "frames": link(video),
            "clear_cache_after_n_frames": CLEAR_CACHE_AFTER_N_FRAMES,
            "multiplier": plan.multiplier,
            "fast_mode": True,
            "ensemble": True,
            "scale_factor": 1.0,
            "dtype": DTYPE,
            "torch_compile": False,
            "batch_size": BATCH_SIZE,
        },
    )
    prefix = filename_prefix(job_id, "interpolate")
    add_video_combine(builder, link(rife), plan.output_fps, prefix, lossless=lossless)
    return builder.build()


def rife_checkpoint(name: str) -> str:
    """``rife47`` -> ``rife47.pth``: RIFE VFI's list is fixed in the node pack, so it is known
    offline (docs/comfyui.md#nodes-vidgen-builds-with); an unknown name is passed on for the checks
    to report."""
    spec = input_spec(bundled_object_info(), "RIFE VFI", "ckpt_name")
    choices = choices_of(spec) if spec is not None else None
    names = [c for c in choices or () if isinstance(c, str)]
    return resolve_model_name(name, names) or name
