"""ComfyUI for vidgen: the graph builders (pure functions returning API-format graphs), the node
schemas and an offline graph check, and (``comfyui_client``) the only code that talks to a
ComfyUI server.
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
from workflows.graph import Graph, filename_prefix
from workflows.image_to_video import build_image_to_video, reference_upload_name
from workflows.interpolate import (
    InterpolationPlan,
    build_interpolate,
    interpolated_frame_count,
    plan_interpolation,
)
from workflows.models import installed_models_from_object_info
from workflows.schema import check_graph
from workflows.text_to_video import SEED_MAX, build_text_to_video, fold_seed
from workflows.upscale import FrameChunk, build_upscale, plan_chunks

__all__ = [
    "SEED_MAX",
    "ComfyUIClient",
    "DeviceStats",
    "FrameChunk",
    "Graph",
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
    "filename_prefix",
    "fold_seed",
    "installed_models_from_object_info",
    "interpolated_frame_count",
    "plan_chunks",
    "plan_interpolation",
    "reference_upload_name",
]
