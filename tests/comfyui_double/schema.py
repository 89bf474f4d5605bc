"""Node schemas of the double: ``object_info.json`` plus the double's installed models and files.

The captured ``object_info.json`` lists the placeholder models and the files that were in ``input/``
on the captured server. Real ComfyUI rebuilds those combo lists from disk on every request, so this
module replaces them with the double's configured model lists and its real ``input/`` folder.
"""

from __future__ import annotations

import copy
import json
import mimetypes
from pathlib import Path
from typing import Any

NodeInfo = dict[str, Any]

# Folder keys of GET /models, in the real server's order (get_models_list.json).
MODEL_FOLDERS = (
    "checkpoints", "configs", "loras", "vae", "text_encoders", "diffusion_models", "clip_vision",
    "style_models", "embeddings", "diffusers", "vae_approx", "controlnet", "gligen",
    "upscale_models", "custom_nodes", "hypernetworks", "photomaker", "classifiers", "model_patches",
    "audio_encoders", "animatediff_models", "animatediff_motion_lora", "animatediff_video_formats",
    "ipadapter", "VHS_video_formats",
)  # fmt: skip

# Where each configurable folder's default list is read from in object_info.json.
FOLDER_SOURCES = {
    "checkpoints": ("CheckpointLoaderSimple", "ckpt_name"),
    "vae": ("VAELoader", "vae_name"),
    "animatediff_models": ("ADE_LoadAnimateDiffModel", "model_name"),
    "ipadapter": ("IPAdapterModelLoader", "ipadapter_file"),
    "clip_vision": ("CLIPVisionLoader", "clip_name"),
    "upscale_models": ("UpscaleModelLoader", "model_name"),
}

# The captured server had no motion LoRA, and an empty list matches every empty combo: this
# folder's loader is named, and the double offers one LoRA by default.
MOTION_LORA_FOLDER = "animatediff_motion_lora"
MOTION_LORA_INPUT = ("ADE_AnimateDiffLoRALoader", "required", "name")
DEFAULT_MOTION_LORAS = ["v2_lora_ZoomIn.ckpt"]

# VAELoader always offers these virtual entries besides the files (they are not files on disk).
VIRTUAL_VAES = ("pixel_space",)
VIDEO_EXTENSIONS = (".webm", ".mp4", ".mkv", ".gif", ".mov")


def combo_choices(spec: list[Any]) -> list[Any] | None:
    """Choices of a spec: classic ``[[...], {}]`` or new-style ``["COMBO", {"options": [...]}]``."""
    if spec and isinstance(spec[0], list):
        return spec[0]
    if spec and spec[0] == "COMBO" and len(spec) > 1 and isinstance(spec[1], dict):
        options = spec[1].get("options")
        return options if isinstance(options, list) else None
    return None


def _set_choices(spec: list[Any], choices: list[Any]) -> None:
    if isinstance(spec[0], list):
        spec[0] = choices
    else:
        spec[1]["options"] = choices


class NodeSchemas:
    """The node catalogue with live combo lists (models, uploaded files)."""

    def __init__(self, object_info_path: Path, input_dir: Path) -> None:
        self._base: dict[str, NodeInfo] = json.loads(object_info_path.read_text(encoding="utf-8"))
        self.input_dir = input_dir
        self.models: dict[str, list[str]] = {folder: [] for folder in MODEL_FOLDERS}
        self.models.update(self._default_models())
        self.models[MOTION_LORA_FOLDER] = list(DEFAULT_MOTION_LORAS)
        self._model_inputs = [*self._find_model_inputs(), (*MOTION_LORA_INPUT, MOTION_LORA_FOLDER)]

    def _default_models(self) -> dict[str, list[str]]:
        found = {}
        for folder, (class_type, name) in FOLDER_SOURCES.items():
            choices = combo_choices(self._input_spec(class_type, name)) or []
            found[folder] = sorted(str(c) for c in choices if c not in VIRTUAL_VAES)
        return found

    def _input_spec(self, class_type: str, name: str) -> list[Any]:
        inputs = self._base[class_type]["input"]
        spec: list[Any] = {**inputs.get("required", {}), **inputs.get("optional", {})}[name]
        return spec

    def _find_model_inputs(self) -> list[tuple[str, str, str, str]]:
        """Every (class, section, input, folder) whose captured list is a model folder's list.

        Matching on the captured list catches all loaders of a folder (Gen1 AnimateDiff loaders,
        LoRA hooks, ...) without a hand-written table that could miss one.
        """
        defaults = {folder: list(self.models[folder]) for folder in FOLDER_SOURCES}
        defaults_vae = defaults["vae"] + list(VIRTUAL_VAES)
        found = []
        for class_type, info in self._base.items():
            for section in ("required", "optional"):
                for name, spec in info["input"].get(section, {}).items():
                    choices = combo_choices(spec)
                    for folder, listed in defaults.items():
                        wanted = defaults_vae if folder == "vae" else listed
                        if choices and sorted(map(str, choices)) == sorted(wanted):
                            found.append((class_type, section, name, folder))
        return found

    def set_models(self, folder: str, names: list[str]) -> None:
        """Make exactly ``names`` installed in ``folder`` (a test makes a model 'not installed')."""
        if folder not in self.models:
            raise KeyError(folder)
        self.models[folder] = sorted(names)

    def class_types(self) -> list[str]:
        return list(self._base)

    def has(self, class_type: str) -> bool:
        return class_type in self._base

    def raw(self, class_type: str) -> NodeInfo:
        """The captured schema, without live lists; cheap, for validation of non-combo inputs."""
        return self._base[class_type]

    def outputs(self, class_type: str) -> tuple[Any, ...]:
        return tuple(self._base[class_type]["output"])

    def is_output_node(self, class_type: str) -> bool:
        return bool(self._base[class_type].get("output_node"))

    def node_info(self, class_type: str) -> NodeInfo:
        """The schema as GET /object_info shows it now."""
        info = copy.deepcopy(self._base[class_type])
        for model_class, section, name, folder in self._model_inputs:
            if model_class == class_type:
                names = list(self.models[folder])
                if folder == "vae":
                    names += list(VIRTUAL_VAES)
                _set_choices(info["input"][section][name], names)
        self._apply_file_lists(class_type, info)
        return info

    def _apply_file_lists(self, class_type: str, info: NodeInfo) -> None:
        required = info["input"].get("required", {})
        if class_type in ("LoadImage", "LoadImageMask") and "image" in required:
            _set_choices(required["image"], self.input_files(images_only=True))
        if class_type == "VHS_LoadVideo" and "video" in required:
            _set_choices(required["video"], self.input_files(videos_only=True))

    def input_files(self, *, images_only: bool = False, videos_only: bool = False) -> list[str]:
        """Top-level files of ``input/``, filtered as LoadImage (images) / VHS (videos) filter."""
        if not self.input_dir.is_dir():
            return []
        names = sorted(p.name for p in self.input_dir.iterdir() if p.is_file())
        if images_only:
            return [n for n in names if (mimetypes.guess_type(n)[0] or "").startswith("image/")]
        if videos_only:
            return [n for n in names if n.lower().endswith(VIDEO_EXTENSIONS)]
        return names

    def all_node_info(self) -> dict[str, NodeInfo]:
        return {class_type: self.node_info(class_type) for class_type in self._base}
