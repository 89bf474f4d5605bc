"""The stages of a job and the worker that runs them; only these names are meant for callers.

The FFmpeg half of exporting: plan with ``build_export_plan`` (what ``vidgen validate`` prints with
``describe``), run each ``FFmpegStep`` with ``execute_ffmpeg_step``, hand each ``ComfyUIStep`` to
the ComfyUI client. ``ffmpeg_runner`` is the only module that runs ffmpeg or ffprobe.
"""

from stages.export_plan import (
    ComfyUIStep,
    ExportPlan,
    ExportPlanError,
    FFmpegStep,
    Step,
    VideoShape,
    build_export_plan,
    deliver_as_is_step,
    describe,
    execute_ffmpeg_step,
)
from stages.ffmpeg_runner import MediaInfo, extract_thumbnail, ffmpeg_version, probe
from stages.merge import ClipInput

__all__ = [
    "ClipInput",
    "ComfyUIStep",
    "ExportPlan",
    "ExportPlanError",
    "FFmpegStep",
    "MediaInfo",
    "Step",
    "VideoShape",
    "build_export_plan",
    "deliver_as_is_step",
    "describe",
    "execute_ffmpeg_step",
    "extract_thumbnail",
    "ffmpeg_version",
    "probe",
]
