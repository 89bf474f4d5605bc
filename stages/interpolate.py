"""Frame interpolation: FFmpeg's minterpolate, and the fix-up after ComfyUI's RIFE.

Both keep the clip's duration exactly, so 16 frames at 8 fps become 48 frames / 2.000 s at 24 fps:

- minterpolate alone drops the end (16 frames at 8 fps give 43 frames, 1.792 s;
  docs/testing.md#ffmpeg-facts-the-tests-rely-on), so the last frame is held two frame times longer
  (``tpad``) and the result trimmed back.
- RIFE returns ``(n-1)*m+1`` frames for ``n`` in (16 -> 46 at m=3; the multiplier and the count
  are ``workflows.interpolate``'s): the last frame is held for ``m-1`` more frames, and a target
  that is no whole multiple of the source rate is reached by interpolating to the next multiple up
  and resampling with ``fps``.
"""

from __future__ import annotations

import math

from vidgen.ffmpeg import filter_number

__all__ = [
    "minterpolate_cost_sec",
    "minterpolate_filters",
    "rife_cost_sec",
    "rife_fixup_filters",
]

# Measured (2 cores): mci takes ~0.25 s per megapixel of each frame it invents; output frames that
# fall on a source frame cost nothing: 8->30 (10 of 150 kept) costs 1.7x 8->24 (40 of 120 kept).
_MINTERPOLATE_SEC_PER_MPX = 0.25
# Not measured here (no GPU): RIFE 4.7 on an RTX 3080 Ti, roughly 0.03 s per 512x512 output frame.
_RIFE_SEC_PER_OUTPUT_MPX = 0.12
# Two frame times of held last frame were the least that gave minterpolate enough to fill the
# clip's full duration (one gave 46 of 48 frames).
_HOLD_FRAMES = 2


def minterpolate_filters(source_fps: float, target_fps: float, duration_sec: float) -> list[str]:
    """Motion-compensated interpolation to ``target_fps``, keeping ``duration_sec`` exactly."""
    if target_fps <= source_fps:
        # Nothing to invent: dropping frames is all a lower rate needs.
        return [f"fps={filter_number(target_fps)}"]
    return [
        f"tpad=stop_mode=clone:stop={_HOLD_FRAMES}",
        f"minterpolate=fps={filter_number(target_fps)}:mi_mode=mci",
        f"trim=duration={filter_number(duration_sec)}",
    ]


def minterpolate_cost_sec(
    pixels: int, source_fps: float, target_fps: float, duration_sec: float
) -> float:
    """Estimated time of minterpolate on ``duration_sec`` of ``pixels``-sized frames."""
    if target_fps <= source_fps:
        return 0.0
    kept = math.gcd(round(source_fps), round(target_fps)) if _whole(source_fps, target_fps) else 0
    invented = (target_fps - kept) * duration_sec
    return _MINTERPOLATE_SEC_PER_MPX * invented * pixels / 1e6


def _whole(*rates: float) -> bool:
    return all(abs(rate - round(rate)) < 1e-9 for rate in rates)


def rife_fixup_filters(rife_fps: float, multiplier: int, target_fps: float) -> list[str]:
    """Filters for RIFE's output: retime, hold the last frame, resample to the target rate.

    The frames are retimed to ``rife_fps`` (the interpolation plan's output rate) whatever rate
    the ComfyUI video says, so a combine node that wrote another rate cannot change the duration.
    """
    filters = [f"setpts=N/({filter_number(rife_fps)}*TB)"]
    if multiplier > 1:
        filters.append(f"tpad=stop_mode=clone:stop={multiplier - 1}")
    filters.append(f"fps={filter_number(target_fps)}")
    return filters


def rife_cost_sec(output_mpx_frames: float) -> float:
    """Rough GPU time of a ComfyUI RIFE pass producing ``output_mpx_frames``."""
    return _RIFE_SEC_PER_OUTPUT_MPX * output_mpx_frames
