"""Which model files a ComfyUI backend offers, and whether a job's models are among them.

The backend's ``/object_info`` is the source: each loader node lists its files as the choices of
one input (DESIGN.md: models are "checked against what the backend offers (/object_info) at
validation time"). A name may leave out its file extension (``rife47`` is ``rife47.pth``).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, replace
from typing import Any

from vidgen.specs import ClipSpec, Engine, GenerationMode, InterpolateSpec, UpscaleSpec
from workflows.graph import choices_of, input_spec

# (node, input) whose choice list is each kind of model; the field names of InstalledModels.
_SOURCES: dict[str, tuple[str, str]] = {
    "checkpoints": ("CheckpointLoaderSimple", "ckpt_name"),
    "vaes": ("VAELoader", "vae_name"),
    "motion_modules": ("ADE_LoadAnimateDiffModel", "model_name"),
    "ip_adapters": ("IPAdapterModelLoader", "ipadapter_file"),
    "clip_visions": ("CLIPVisionLoader", "clip_name"),
    "upscale_models": ("UpscaleModelLoader", "model_name"),
    "rife_models": ("RIFE VFI", "ckpt_name"),
}

# VAELoader offers "pixel_space" (no VAE at all), which is no file a user installed.
_NOT_FILES = frozenset({"pixel_space"})


@dataclass(frozen=True, slots=True)
class InstalledModels:
    """The model files one backend offers, per kind, as ComfyUI names them."""

    checkpoints: tuple[str, ...] = ()
    vaes: tuple[str, ...] = ()
    motion_modules: tuple[str, ...] = ()
    ip_adapters: tuple[str, ...] = ()
    clip_visions: tuple[str, ...] = ()
    upscale_models: tuple[str, ...] = ()
    # RIFE VFI lists a fixed set and downloads a missing file on first use (API.md §8).
    rife_models: tuple[str, ...] = ()


def installed_models_from_object_info(object_info: Mapping[str, Any]) -> InstalledModels:
    """Read every loader's choice list; a node pack that is not installed gives an empty tuple."""
    found: dict[str, tuple[str, ...]] = {}
    for field_name, (class_type, input_name) in _SOURCES.items():
        spec = input_spec(object_info, class_type, input_name)
        choices = choices_of(spec) if spec is not None else None
        found[field_name] = tuple(
            str(c) for c in choices or () if isinstance(c, str) and c not in _NOT_FILES
        )
    return InstalledModels(**found)


def resolve_model_name(name: str, choices: Iterable[str]) -> str | None:
    """The choice ``name`` means: itself, or the one choice that is ``name`` plus an extension."""
    available = list(choices)
    if name in available:
        return name
    matches = [c for c in available if "." in c and c.rsplit(".", 1)[0] == name]
    return matches[0] if len(matches) == 1 else None


def resolve_clip_models(spec: ClipSpec, installed: InstalledModels) -> ClipSpec:
    """The clip with each model name completed to the backend's full file name where it resolves."""
    names = {
        "checkpoint": installed.checkpoints,
        "vae": installed.vaes,
        "motion_module": installed.motion_modules,
        "ip_adapter": installed.ip_adapters,
        "clip_vision": installed.clip_visions,
    }
    changes: dict[str, Any] = {}
    for attribute, choices in names.items():
        current = getattr(spec, attribute)
        resolved = resolve_model_name(current, choices) if current else None
        if resolved is not None and resolved != current:
            changes[attribute] = resolved
    return replace(spec, **changes)


def check_models(
    installed: InstalledModels,
    *,
    clips: Iterable[ClipSpec] = (),
    upscale: UpscaleSpec | None = None,
    interpolate: InterpolateSpec | None = None,
) -> list[str]:
    """One message per model a job needs that the backend does not offer, naming what it offers.

    Imported clips need no model; upscale and interpolate specs are checked only when they run on
    ComfyUI (``engine == comfyui``), since the FFmpeg fallbacks use no model files.
    """
    wanted: list[tuple[str, str, str]] = []  # (who, kind field, name)
    for clip in clips:
        wanted.extend((f"clip {clip.clip_name!r}", kind, name) for kind, name in _clip_models(clip))
    if upscale is not None and upscale.engine is Engine.COMFYUI:
        wanted.append(("upscale", "upscale_models", upscale.model))
    if interpolate is not None and interpolate.engine is Engine.COMFYUI:
        wanted.append(("interpolate", "rife_models", interpolate.model))
    messages: list[str] = []
    for who, kind, name in wanted:
        choices: tuple[str, ...] = getattr(installed, kind)
        if resolve_model_name(name, choices) is None:
            message = _missing_message(who, kind, name, choices)
            if message not in messages:
                messages.append(message)
    return messages


def _clip_models(clip: ClipSpec) -> list[tuple[str, str]]:
    if clip.mode is GenerationMode.IMPORTED:
        return []
    models = [("checkpoints", clip.checkpoint), ("motion_modules", clip.motion_module)]
    if clip.vae:  # empty: the checkpoint's own VAE is used
        models.append(("vaes", clip.vae))
    if clip.mode is GenerationMode.IMAGE_TO_VIDEO:
        models += [("ip_adapters", clip.ip_adapter), ("clip_visions", clip.clip_vision)]
    return models


_KIND_WORDS = {
    "checkpoints": "checkpoint",
    "vaes": "VAE",
    "motion_modules": "motion module",
    "ip_adapters": "IPAdapter model",
    "clip_visions": "CLIP vision model",
    "upscale_models": "upscale model",
    "rife_models": "RIFE model",
}


def _missing_message(who: str, kind: str, name: str, choices: tuple[str, ...]) -> str:
    word = _KIND_WORDS[kind]
    offered = ", ".join(choices) if choices else "none"
    if not name:
        return f"{who}: no {word} is named; installed: {offered}"
    return f"{who}: {word} {name!r} is not installed on ComfyUI; installed: {offered}"
