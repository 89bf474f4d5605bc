"""The stages of a job and the worker that runs them; only these names are meant for callers.

The export half: ``build_export_plan`` plans the steps (``FFmpegStep``: one ffmpeg run;
``ComfyUIStep``: one ComfyUI stage, whose prompts ``step_prompts`` gives); ``execute_ffmpeg_step``
runs an ffmpeg step; ``make_workers`` builds the workers ``vidgen run`` and ``vidgen work`` start.
"""

from stages.comfyui_steps import ComfyUIStep, StepPrompt, step_prompts, upload_name
from stages.export import execute_ffmpeg_step
from stages.export_plan import (
    ExportPlan,
    ExportPlanError,
    FFmpegStep,
    Step,
    build_export_plan,
    deliver_as_is_step,
)
from stages.merge import ClipInput
from stages.pool import make_workers
from stages.shapes import VideoShape
from stages.sheet import grid_of

__all__ = [
    "ClipInput",
    "ComfyUIStep",
    "ExportPlan",
    "ExportPlanError",
    "FFmpegStep",
    "Step",
    "StepPrompt",
    "VideoShape",
    "build_export_plan",
    "deliver_as_is_step",
    "execute_ffmpeg_step",
    "grid_of",
    "make_workers",
    "step_prompts",
    "upload_name",
]
