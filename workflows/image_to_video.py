"""Image-to-video: the text-to-video graph with a reference image applied through IPAdapter Plus.

Explicit loaders, not the unified one (docs/comfyui.md#nodes-vidgen-builds-with)::

    LoadImage(uploaded name) -------------------+
    IPAdapterModelLoader(ip_adapter) -----------+-> IPAdapterAdvanced(weight) -> AnimateDiff ...
    CLIPVisionLoader(clip_vision) --------------+   (clip_vision linked)
    CheckpointLoaderSimple.MODEL ---------------+

The image reaches ComfyUI by upload (``ComfyUIClient.upload``), never by path: pass the name the
upload answered with, which may differ from the one sent.
"""

from __future__ import annotations

from functools import partial
from pathlib import Path

from vidgen.specs import ClipSpec
from workflows.graph import Graph, GraphBuilder, Link, link
from workflows.text_to_video import build_animation

# The same embedding for every frame, over the whole schedule: the reference sets the look of the
# clip, the prompt and motion module do the rest.
WEIGHT_TYPE = "linear"
COMBINE_EMBEDS = "concat"
EMBEDS_SCALING = "V only"


def reference_upload_name(job_id: str, image: Path) -> str:
    """The name a clip's reference image is uploaded under (ComfyUI may answer with another)."""
    return f"vidgen-{job_id}{image.suffix.lower()}"


def build_image_to_video(spec: ClipSpec, job_id: str, reference_image: str) -> Graph:
    """The image-to-video graph of one clip; ``reference_image`` is the uploaded file's name."""
    return build_animation(spec, job_id, partial(_apply_ip_adapter, spec, reference_image))


def _apply_ip_adapter(
    spec: ClipSpec, reference_image: str, builder: GraphBuilder, model: Link
) -> Link:
    image = builder.add("LoadImage", {"image": reference_image})
    ip_adapter = builder.add("IPAdapterModelLoader", {"ipadapter_file": spec.ip_adapter})
    clip_vision = builder.add("CLIPVisionLoader", {"clip_name": spec.clip_vision})
    applied = builder.add(
        "IPAdapterAdvanced",
        {
            "model": model,
            "ipadapter": link(ip_adapter),
            "image": link(image),
            # With the explicit loader the run fails "Missing CLIPVision model." unless linked
            # (docs/comfyui.md#nodes-vidgen-builds-with).
            "clip_vision": link(clip_vision),
            "weight": spec.ip_adapter_weight,
            "weight_type": WEIGHT_TYPE,
            "combine_embeds": COMBINE_EMBEDS,
            "start_at": 0.0,
            "end_at": 1.0,
            "embeds_scaling": EMBEDS_SCALING,
        },
    )
    return link(applied)
