"""Upscale: one ComfyUI prompt per chunk of frames of an uploaded video (docs/architecture.md).

Shape (docs/comfyui.md#nodes-vidgen-builds-with, captured/graph_upscale_video.json)::

    VHS_LoadVideo(uploaded name, skip_first_frames, frame_load_cap) -> UpscaleModelLoader +
    ImageUpscaleWithModel (x4) [-> ImageScaleBy(0.5, lanczos) for 2x] -> VHS_VideoCombine(h264 mp4,
    lossless between stages)

A whole clip of 2048² frames does not fit a 12 GB card, so the caller plans chunks of
``ComfyUISettings.upscale_chunk_frames`` with ``plan_chunks``, runs one prompt per chunk (each
writes its own file, ``vidgen/{job_id}/upscale_NNNN``) and joins the chunks in order with FFmpeg;
all chunks share codec settings, so the join can be a stream copy.
"""

from __future__ import annotations

from dataclasses import dataclass

from vidgen.specs import UpscaleSpec
from workflows.graph import Graph, GraphBuilder, add_video_combine, filename_prefix, link

# Both offered models (RealESRGAN_x4plus, RealESRGAN_x4plus_anime_6B) upscale 4x; other scales
# are the 4x result scaled down (2x is the 4x model, then half size).
MODEL_SCALE = 4
DOWNSCALE_METHOD = "lanczos"


@dataclass(frozen=True, slots=True)
class FrameChunk:
    """The ``index``-th chunk: ``frame_count`` frames of a video from frame ``first_frame`` on."""

    index: int
    first_frame: int
    frame_count: int


def plan_chunks(frame_count: int, chunk_frames: int) -> list[FrameChunk]:
    """Consecutive chunks of at most ``chunk_frames`` frames covering ``frame_count`` frames.

    Raises:
        ValueError: a count below 1.
    """
    if frame_count < 1 or chunk_frames < 1:
        raise ValueError(
            f"need at least one frame per video and chunk, got {frame_count}, {chunk_frames}"
        )
    starts = range(0, frame_count, chunk_frames)
    return [
        FrameChunk(index, start, min(chunk_frames, frame_count - start))
        for index, start in enumerate(starts)
    ]


def build_upscale(
    video_name: str,
    spec: UpscaleSpec,
    chunk: FrameChunk,
    fps: float,
    job_id: str,
    *,
    lossless: bool = False,
) -> Graph:
    """The upscale graph of one chunk; ``video_name`` is the uploaded video, ``fps`` its rate;
    ``lossless`` writes h264 at crf 0 instead of 19.

    Raises:
        ValueError: a scale outside 1..4 (the model's own factor is the most it gives).
    """
    if not 1 <= spec.scale <= MODEL_SCALE:
        raise ValueError(f"upscale factor must be 1..{MODEL_SCALE}, got {spec.scale}")
    builder = GraphBuilder()
    video = builder.add(
        "VHS_LoadVideo",
        {
            "video": video_name,
            "force_rate": 0,  # 0 = the source rate: every frame, once
            "custom_width": 0,
            "custom_height": 0,
            "frame_load_cap": chunk.frame_count,
            "skip_first_frames": chunk.first_frame,
            "select_every_nth": 1,
            # "None" neither resizes nor checks frame counts
            # (docs/comfyui.md#nodes-vidgen-builds-with).
            "format": "None",
        },
    )
    model = builder.add("UpscaleModelLoader", {"model_name": spec.model})
    images = link(
        builder.add("ImageUpscaleWithModel", {"upscale_model": link(model), "image": link(video)})
    )
    if spec.scale != MODEL_SCALE:
        scaled = builder.add(
            "ImageScaleBy",
            {
                "image": images,
                "upscale_method": DOWNSCALE_METHOD,
                "scale_by": spec.scale / MODEL_SCALE,
            },
        )
        images = link(scaled)
    prefix = filename_prefix(job_id, f"upscale_{chunk.index:04d}")
    add_video_combine(builder, images, fps, prefix, lossless=lossless)
    return builder.build()
