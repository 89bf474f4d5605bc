"""Text-to-video: the AnimateDiff-Evolved Gen2 graph for one clip (docs/architecture.md).

Shape (docs/comfyui.md#nodes-vidgen-builds-with, captured/graph_animatediff_gen2_txt2vid.json,
without FreeU_V2, which turns small frames black, docs/comfyui.md#traps)::

    CheckpointLoaderSimple -> CLIPSetLastLayer(-2) -> CLIPTextEncode (positive, negative)
                              (prompt travel: ADE_PromptScheduling as the positive)
    VAELoader (the configured VAE; the checkpoint's own when none is named)
    ADE_AnimateDiffLoRALoader (chained, one per motion LoRA) ------+
    ADE_LoadAnimateDiffModel -> ADE_ApplyAnimateDiffModelSimple -+
    ADE_StandardUniformContextOptions(16, overlap 4) ------------+-> ADE_UseEvolvedSampling(model)
    EmptyLatentImage(width, height, frames) -> KSampler(euler_ancestral, normal)
    -> VAEDecode (16 frames or fewer) | VAEDecodeTiled (more) -> VHS_VideoCombine(h264 mp4)

Image-to-video (``workflows.image_to_video``) is this graph with the checkpoint's model patched by
IPAdapter before AnimateDiff sees it, so both are built by ``build_animation``.
"""

from __future__ import annotations

from collections.abc import Callable

from vidgen.specs import ClipSpec, PromptKeyframe
from workflows.graph import Graph, GraphBuilder, Link, add_video_combine, filename_prefix, link

# KSampler's seed input allows 0..2**64-1 (object_info.json, KSampler.seed.max); the tests check
# that this constant still matches the bundled schema.
SEED_MAX = 2**64 - 1

# Measured (docs/comfyui.md#measured): 16 frames at 512² fit a 12 GB card as they are; longer clips
# need context windows of 16 and a tiled VAE decode, asked for up front to skip the failed attempt.
CONTEXT_LENGTH = 16
CONTEXT_OVERLAP = 4
TILE_SIZE_PX = 512
TILE_OVERLAP_PX = 64

SAMPLER = "euler_ancestral"
SCHEDULER = "normal"
# CLIP skip 2, as in the validated Gen2 graph; the usual setting for SD 1.5 AnimateDiff.
CLIP_LAST_LAYER = -2

ModelPatch = Callable[[GraphBuilder, Link], Link]


def build_text_to_video(spec: ClipSpec, job_id: str) -> Graph:
    """The text-to-video graph of one clip; its video is written under ``vidgen/{job_id}/``."""
    return build_animation(spec, job_id, patch_model=None)


def fold_seed(seed: int) -> int:
    """The seed KSampler gets: ``seed`` itself in 0..SEED_MAX, else ``seed mod (SEED_MAX + 1)``.

    Seeds are 0..2**64-1 (docs/data-model.md, Clip.seedValue), which all fit; folding keeps any
    other integer deterministic instead of letting ComfyUI reject the graph.
    """
    return seed % (SEED_MAX + 1)


def build_animation(spec: ClipSpec, job_id: str, patch_model: ModelPatch | None) -> Graph:
    """The AnimateDiff graph of one clip, with ``patch_model`` applied to the checkpoint's model."""
    builder = GraphBuilder()
    checkpoint = builder.add("CheckpointLoaderSimple", {"ckpt_name": spec.checkpoint})
    vae = (
        link(builder.add("VAELoader", {"vae_name": spec.vae})) if spec.vae else link(checkpoint, 2)
    )
    clip = builder.add(
        "CLIPSetLastLayer", {"clip": link(checkpoint, 1), "stop_at_clip_layer": CLIP_LAST_LAYER}
    )
    positive = _add_positive(builder, spec, link(clip))
    negative = builder.add("CLIPTextEncode", {"clip": link(clip), "text": spec.negative_prompt})
    model = link(checkpoint, 0)
    if patch_model is not None:
        model = patch_model(builder, model)
    model = _add_animatediff(builder, spec, model)
    latent = builder.add(
        "EmptyLatentImage", {"width": spec.width, "height": spec.height, "batch_size": spec.frames}
    )
    sampler = builder.add(
        "KSampler",
        {
            "model": model,
            "seed": fold_seed(spec.seed),
            "steps": spec.steps,
            "cfg": spec.cfg,
            "sampler_name": SAMPLER,
            "scheduler": SCHEDULER,
            "positive": link(positive),
            "negative": link(negative),
            "latent_image": link(latent),
            "denoise": 1.0,
        },
    )
    images = _add_decode(builder, spec.frames, link(sampler), vae)
    add_video_combine(builder, images, float(spec.frame_rate), filename_prefix(job_id, "clip"))
    return builder.build()


def _add_positive(builder: GraphBuilder, spec: ClipSpec, clip: Link) -> str:
    if not spec.prompt_schedule:
        return builder.add("CLIPTextEncode", {"clip": clip, "text": spec.prompt})
    return builder.add(
        "ADE_PromptScheduling",
        {
            "prompts": schedule_text(spec.prompt_schedule),
            "clip": clip,
            # 0 would end the schedule at the last keyframe; the clip's length holds the last
            # prompt to its end.
            "max_length": spec.frames,
            "print_schedule": False,
            "tensor_interp": "lerp",
        },
    )


def schedule_text(keyframes: tuple[PromptKeyframe, ...]) -> str:
    """The schedule in AnimateDiff-Evolved's JSON-like format, one keyframe a line:
    ``"0": "a bud",`` then ``"8": "a flower"``. Its parser takes a prompt up to the next double
    quote and knows no escapes, so intake refuses prompts that hold one."""
    return ",\n".join(f'"{k.frame}": "{k.prompt}"' for k in keyframes)


def _add_animatediff(builder: GraphBuilder, spec: ClipSpec, model: Link) -> Link:
    motion_model = builder.add("ADE_LoadAnimateDiffModel", {"model_name": spec.motion_module})
    applied: dict[str, Link] = {"motion_model": link(motion_model)}
    previous: Link | None = None
    for lora in spec.motion_loras:
        inputs: dict[str, object] = {"name": lora.name, "strength": lora.strength}
        if previous is not None:
            inputs["prev_motion_lora"] = previous
        previous = link(builder.add("ADE_AnimateDiffLoRALoader", inputs))
    if previous is not None:
        applied["motion_lora"] = previous
    motion = builder.add("ADE_ApplyAnimateDiffModelSimple", applied)
    # Always attached: AnimateDiff-Evolved samples regularly when the latents are no longer than the
    # context (docs/comfyui.md#measured, "Regular sampling activated"), and in windows beyond it.
    context = builder.add(
        "ADE_StandardUniformContextOptions",
        {
            "context_length": CONTEXT_LENGTH,
            "context_stride": 1,
            "context_overlap": CONTEXT_OVERLAP,
            "fuse_method": "pyramid",
            "use_on_equal_length": False,
            "start_percent": 0.0,
            "guarantee_steps": 1,
        },
    )
    evolved = builder.add(
        "ADE_UseEvolvedSampling",
        {
            "model": model,
            "beta_schedule": "autoselect",
            "m_models": link(motion),
            "context_options": link(context),
        },
    )
    return link(evolved)


def _add_decode(builder: GraphBuilder, frames: int, samples: Link, vae: Link) -> Link:
    if frames <= CONTEXT_LENGTH:
        return link(builder.add("VAEDecode", {"samples": samples, "vae": vae}))
    decode = builder.add(
        "VAEDecodeTiled",
        {
            "samples": samples,
            "vae": vae,
            "tile_size": TILE_SIZE_PX,
            "overlap": TILE_OVERLAP_PX,
            # Used by video VAEs only; SD 1.5's image VAE ignores them. The node's defaults.
            "temporal_size": 64,
            "temporal_overlap": 8,
        },
    )
    return link(decode)
