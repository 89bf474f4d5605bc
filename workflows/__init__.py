"""ComfyUI for vidgen: the graph builders (pure functions returning API-format graphs), the offline
graph and model checks, and (``comfyui_client``) the only code that talks to a ComfyUI server.
"""

from workflows.comfyui_client import ComfyUIClient
from workflows.comfyui_types import (
    DeviceStats,
    OutputFile,
    PromptLookup,
    PromptProgress,
    PromptResult,
    PromptState,
    QueueEntry,
    QueueState,
    SystemStats,
)
from workflows.graph import Graph, check_graph, filename_prefix
from workflows.image_to_video import build_image_to_video
from workflows.interpolate import (
    InterpolationPlan,
    build_interpolate,
    interpolated_frame_count,
    plan_interpolation,
)
from workflows.models import (
    InstalledModels,
    check_models,
    installed_models_from_object_info,
    resolve_clip_models,
    resolve_model_name,
)
from workflows.text_to_video import SEED_MAX, build_text_to_video, fold_seed
from workflows.upscale import FrameChunk, build_upscale, plan_chunks

__all__ = [
    "SEED_MAX",
    "ComfyUIClient",
    "DeviceStats",
    "FrameChunk",
    "Graph",
    "InstalledModels",
    "InterpolationPlan",
    "OutputFile",
    "PromptLookup",
    "PromptProgress",
    "PromptResult",
    "PromptState",
    "QueueEntry",
    "QueueState",
    "SystemStats",
    "build_image_to_video",
    "build_interpolate",
    "build_text_to_video",
    "build_upscale",
    "check_graph",
    "check_models",
    "filename_prefix",
    "fold_seed",
    "installed_models_from_object_info",
    "interpolated_frame_count",
    "plan_chunks",
    "plan_interpolation",
    "resolve_clip_models",
    "resolve_model_name",
]
