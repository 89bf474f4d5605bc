"""Upscaling: the FFmpeg engine's lanczos filter, and what the ComfyUI engine must deliver.

Both engines multiply each side by ``scale`` exactly (512x512 at 4x is 2048x2048); no side may
exceed ``vidgen.specs.MAX_OUTPUT_SIDE``, which the export plan checks before anything runs.
"""

from __future__ import annotations

__all__ = [
    "esrgan_cost_sec",
    "lanczos_cost_sec",
    "lanczos_filter",
    "upscaled_size",
]

# Measured: scale to 2048x2048 runs at ~0.002 s per output megapixel on 2 cores.
_LANCZOS_SEC_PER_MPX = 0.002
# Not measured here (no GPU): Real-ESRGAN x4plus on an RTX 3080 Ti takes roughly 0.3 s for a
# 512x512 frame; used only to weight progress and for `vidgen validate`.
_ESRGAN_SEC_PER_INPUT_MPX = 1.2


def upscaled_size(width: int, height: int, scale: int) -> tuple[int, int]:
    """The frame size after upscaling by ``scale``."""
    return width * scale, height * scale


def lanczos_filter(width: int, height: int, scale: int) -> str:
    """The scale filter for the FFmpeg engine: lanczos keeps edges sharper than bicubic."""
    out_width, out_height = upscaled_size(width, height, scale)
    return f"scale={out_width}:{out_height}:flags=lanczos"


def lanczos_cost_sec(output_mpx_frames: float) -> float:
    """Estimated time of the lanczos filter alone (encoding the larger frames is counted apart)."""
    return _LANCZOS_SEC_PER_MPX * output_mpx_frames


def esrgan_cost_sec(input_mpx_frames: float) -> float:
    """Rough GPU time of a ComfyUI Real-ESRGAN pass over ``input_mpx_frames``."""
    return _ESRGAN_SEC_PER_INPUT_MPX * input_mpx_frames
