"""Typed values past the validation edge: what a manifest asks for, with every default applied.

Intake builds these from a validated manifest; jobs store them as JSON (``to_json``) and the
stages read them back (``from_json``), so no stage ever sees raw YAML.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from enum import StrEnum
from pathlib import Path
from typing import Any


class GenerationMode(StrEnum):
    TEXT_TO_VIDEO = "textToVideo"
    IMAGE_TO_VIDEO = "imageToVideo"
    IMPORTED = "imported"


class TransitionType(StrEnum):
    NONE = "none"
    FADE = "fade"
    DISSOLVE = "dissolve"
    WIPE = "wipe"


class Engine(StrEnum):
    COMFYUI = "comfyui"
    FFMPEG = "ffmpeg"


class OutputFormat(StrEnum):
    MP4 = "mp4"
    MP4_H265 = "mp4-h265"
    WEBM = "webm"
    GIF = "gif"

    @property
    def extension(self) -> str:
        return {"mp4": "mp4", "mp4-h265": "mp4", "webm": "webm", "gif": "gif"}[self.value]


class Quality(StrEnum):
    DRAFT = "draft"
    STANDARD = "standard"
    HIGH = "high"


@dataclass(frozen=True, slots=True)
class ClipSpec:
    """One clip as resolved at intake: full model names, a concrete seed, sizes in pixels."""

    clip_name: str
    mode: GenerationMode
    prompt: str = ""
    negative_prompt: str = ""
    seed: int = 0
    steps: int = 20
    cfg: float = 7.5
    frames: int = 16
    frame_rate: int = 8
    width: int = 512
    height: int = 512
    checkpoint: str = ""
    vae: str = ""
    motion_module: str = ""
    ip_adapter: str = ""
    clip_vision: str = ""
    ip_adapter_weight: float = 0.8
    reference_image: str | None = None  # path of the stored copy (under storage) once recorded
    video: str | None = None  # imported video: path of the stored copy
    regenerate: bool = False


@dataclass(frozen=True, slots=True)
class TransitionSpec:
    type: TransitionType = TransitionType.NONE
    duration_sec: float = 0.0
    direction: str = "left"  # wipe only: left | right | up | down


@dataclass(frozen=True, slots=True)
class UpscaleSpec:
    scale: int = 2  # 2 or 4
    engine: Engine = Engine.FFMPEG  # "auto" is decided at intake and recorded as one of these
    model: str = "RealESRGAN_x4plus.pth"


@dataclass(frozen=True, slots=True)
class InterpolateSpec:
    fps: int = 24
    engine: Engine = Engine.FFMPEG
    model: str = "rife47.pth"


@dataclass(frozen=True, slots=True)
class ExportSpec:
    """What the export job makes; ``deliver_as_is`` for a lone clip without an export section."""

    transition: TransitionSpec = field(default_factory=TransitionSpec)
    upscale: UpscaleSpec | None = None
    interpolate: InterpolateSpec | None = None
    format: OutputFormat = OutputFormat.MP4
    quality: Quality = Quality.STANDARD
    deliver_as_is: bool = False

    @property
    def needs_comfyui(self) -> bool:
        return (self.upscale is not None and self.upscale.engine is Engine.COMFYUI) or (
            self.interpolate is not None and self.interpolate.engine is Engine.COMFYUI
        )

    def to_json(self) -> dict[str, Any]:
        return _plain_dict(asdict(self))

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> ExportSpec:
        upscale = data.get("upscale")
        interpolate = data.get("interpolate")
        transition = data.get("transition") or {}
        return cls(
            transition=TransitionSpec(
                type=TransitionType(transition.get("type", "none")),
                duration_sec=float(transition.get("duration_sec", 0.0)),
                direction=transition.get("direction", "left"),
            ),
            upscale=UpscaleSpec(
                scale=int(upscale["scale"]),
                engine=Engine(upscale["engine"]),
                model=upscale["model"],
            )
            if upscale
            else None,
            interpolate=InterpolateSpec(
                fps=int(interpolate["fps"]),
                engine=Engine(interpolate["engine"]),
                model=interpolate["model"],
            )
            if interpolate
            else None,
            format=OutputFormat(data.get("format", "mp4")),
            quality=Quality(data.get("quality", "standard")),
            deliver_as_is=bool(data.get("deliver_as_is", False)),
        )


def clip_spec_to_json(spec: ClipSpec) -> dict[str, Any]:
    return _plain_dict(asdict(spec))


def clip_spec_from_json(data: dict[str, Any]) -> ClipSpec:
    values = dict(data)
    values["mode"] = GenerationMode(values["mode"])
    return ClipSpec(**values)


def _plain_dict(value: dict[str, Any]) -> dict[str, Any]:
    return {k: _plain(v) for k, v in value.items()}


def _plain(value: Any) -> Any:
    """Enums to their string values, recursively, so the result is JSON."""
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    if isinstance(value, StrEnum):
        return value.value
    return value


_MANIFEST_KEYS = {
    "clip_name": "name",
    "prompt": "prompt",
    "negative_prompt": "negativePrompt",
    "seed": "seed",
    "steps": "steps",
    "cfg": "cfg",
    "frames": "frames",
    "checkpoint": "checkpoint",
    "vae": "vae",
    "motion_module": "motionModule",
}
_IMAGE_KEYS = {
    "ip_adapter": "ipAdapter",
    "clip_vision": "clipVision",
    "ip_adapter_weight": "ipAdapterWeight",
}


def clip_spec_as_manifest(spec: dict[str, Any]) -> dict[str, Any]:
    """A resolved clip in the manifest's own words (camelCase keys, the seed drawn, full model
    names), its inputs named by their stored file name: what the status page shows and what
    reproduces the clip. No folder of this machine appears in it."""
    mode = GenerationMode(spec["mode"])
    if mode is GenerationMode.IMPORTED:
        return {"name": spec["clip_name"], "video": Path(spec["video"] or "").name}
    clip = {key: spec[field] for field, key in _MANIFEST_KEYS.items() if field in spec}
    if mode is GenerationMode.IMAGE_TO_VIDEO:
        clip["image"] = Path(spec["reference_image"] or "").name
        clip.update({key: spec[field] for field, key in _IMAGE_KEYS.items() if field in spec})
    return clip


# "WxH" in pixels, as config.yaml's generation.resolution spells it.
RESOLUTION_PATTERN = "^[0-9]+x[0-9]+$"


def parse_resolution(text: str) -> tuple[int, int]:
    """``(width, height)`` of ``"512x768"``.

    Raises:
        ValueError: the text is not two whole numbers joined by ``x``.
    """
    width, _, height = text.partition("x")
    if not all(side.isascii() and side.isdigit() for side in (width, height)):
        raise ValueError(f"expected WIDTHxHEIGHT such as 512x512, got {text!r}")
    return int(width), int(height)
