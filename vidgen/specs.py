"""Typed values past the validation edge: what a manifest asks for, with every default applied,
and what each job is asked to do.

Intake builds these from a validated manifest. A job stores its request as JSON (``to_json``)
and the stages read it back (``from_json``), so no stage ever sees raw YAML or a raw dict. What a
job *produces* is kept apart from what it was asked (``JobOutputs``, and the ComfyUI prompts
recorded in their own table), so a request never changes once queued.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, field, fields
from enum import IntEnum, StrEnum
from pathlib import Path
from typing import Any, TypeVar

_T = TypeVar("_T")

# No side of a finished video may exceed this many pixels, after upscaling.
MAX_OUTPUT_SIDE = 4096
# A GIF is at most this wide (its size grows with every pixel of every frame), and plays at most
# this fast: its frame delays are whole hundredths of a second, and 4/100 s is the shortest
# delay every player keeps (shorter ones are slowed down by some).
GIF_MAX_WIDTH = 512
GIF_MAX_FPS = 25


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


class Priority(IntEnum):
    """A job's place in the queue: higher first, then older (``priority:`` in a manifest)."""

    LOW = -1
    NORMAL = 0
    HIGH = 1

    @classmethod
    def named(cls, word: str) -> Priority:
        return cls[word.upper()]

    @property
    def word(self) -> str:
        return self.name.lower()


class ModelKind(StrEnum):
    """Every kind of model file vidgen names; the value is its key in a manifest and under
    ``models:`` in config.yaml."""

    CHECKPOINT = "checkpoint"
    VAE = "vae"
    MOTION_MODULE = "motionModule"
    IP_ADAPTER = "ipAdapter"
    CLIP_VISION = "clipVision"
    UPSCALE = "upscale"
    RIFE = "rife"
    MOTION_LORA = "motionLora"  # no default in config.yaml: a clip names its own, or none

    @property
    def attribute(self) -> str:
        """The snake_case name of this kind's field (``ModelSettings``, ``ClipSpec``)."""
        return "".join(f"_{c.lower()}" if c.isupper() else c for c in self.value)

    @property
    def words(self) -> str:
        """How a message names this kind of model."""
        return _MODEL_WORDS[self]

    @property
    def config_key(self) -> str:
        return f"models.{self.value}"


_MODEL_WORDS = {
    ModelKind.CHECKPOINT: "checkpoint",
    ModelKind.VAE: "VAE",
    ModelKind.MOTION_MODULE: "motion module",
    ModelKind.IP_ADAPTER: "IPAdapter model",
    ModelKind.CLIP_VISION: "CLIP vision model",
    ModelKind.UPSCALE: "upscale model",
    ModelKind.RIFE: "RIFE model",
    ModelKind.MOTION_LORA: "motion LoRA",
}
# The models a clip's graph loads: imported clips need none, image-to-video two more.
TEXT_TO_VIDEO_MODELS = (ModelKind.CHECKPOINT, ModelKind.VAE, ModelKind.MOTION_MODULE)
IMAGE_TO_VIDEO_MODELS = (*TEXT_TO_VIDEO_MODELS, ModelKind.IP_ADAPTER, ModelKind.CLIP_VISION)


def models_for(mode: GenerationMode) -> tuple[ModelKind, ...]:
    """The kinds of model a clip of this mode loads."""
    if mode is GenerationMode.IMPORTED:
        return ()
    return IMAGE_TO_VIDEO_MODELS if mode is GenerationMode.IMAGE_TO_VIDEO else TEXT_TO_VIDEO_MODELS


def resolve_model_name(name: str, choices: Iterable[str]) -> str | None:
    """The choice ``name`` means: itself, or the one choice that is ``name`` plus an extension
    (``rife47`` is ``rife47.pth``); None when there is none, or more than one."""
    available = list(choices)
    if name in available:
        return name
    matches = [c for c in available if "." in c and c.rsplit(".", 1)[0] == name]
    return matches[0] if len(matches) == 1 else None


@dataclass(frozen=True, slots=True)
class InstalledModels:
    """The model files ComfyUI offers, per kind, as ComfyUI names them."""

    by_kind: Mapping[ModelKind, tuple[str, ...]] = field(default_factory=dict)

    def names(self, kind: ModelKind) -> tuple[str, ...]:
        return tuple(self.by_kind.get(kind, ()))

    def merged(self, other: InstalledModels) -> InstalledModels:
        """What either offers (several backends), each name once."""
        kinds = dict.fromkeys([*self.by_kind, *other.by_kind])
        return InstalledModels(
            {k: tuple(dict.fromkeys([*self.names(k), *other.names(k)])) for k in kinds}
        )


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


@dataclass(frozen=True, slots=True)
class PromptKeyframe:
    """Prompt travel: from ``frame`` on the clip shows ``prompt``, blended from the keyframe
    before it (AnimateDiff-Evolved interpolates the encoded prompts between keyframes)."""

    frame: int
    prompt: str


@dataclass(frozen=True, slots=True)
class MotionLora:
    """A motion LoRA (camera moves such as v2_lora_ZoomIn) applied to the motion module."""

    name: str
    strength: float = 1.0


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
    prompt_schedule: tuple[PromptKeyframe, ...] = ()  # prompt travel instead of ``prompt``
    motion_loras: tuple[MotionLora, ...] = ()

    def model(self, kind: ModelKind) -> str:
        value: str = getattr(self, kind.attribute)
        return value

    def to_json(self) -> dict[str, Any]:
        return _plain_dict(asdict(self))

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> ClipSpec:
        known = {f.name for f in fields(cls)}
        values = {k: v for k, v in data.items() if k in known}
        values["mode"] = GenerationMode(values["mode"])
        values["prompt_schedule"] = tuple(
            PromptKeyframe(int(k["frame"]), str(k["prompt"]))
            for k in values.get("prompt_schedule", ())
        )
        values["motion_loras"] = tuple(
            MotionLora(str(m["name"]), float(m["strength"])) for m in values.get("motion_loras", ())
        )
        return cls(**values)


MAX_SEED = 2**64 - 1
MAX_VARIATIONS = 16
# The settings a sweep may vary, as a manifest names them (the sampler, scheduler and denoise
# are fixed in vidgen's graphs, so they cannot be swept).
SWEEPABLE = ("seed", "cfg", "steps")


@dataclass(frozen=True, slots=True)
class Pick:
    """Which variation of a clip the export plays, as ``pick`` says: by number, or by a seed
    that was drawn at intake (then found when the seeds are known); ``path`` and ``line`` name
    the ``pick`` key for an error."""

    number: int | None
    seed: int | None = None
    path: str = ""
    line: int = 1


@dataclass(frozen=True, slots=True)
class Variation:
    """One of the clips a manifest clip with ``variations`` or ``sweep`` becomes."""

    first: int  # position of the group's first variation among the manifest's clips
    number: int  # 1-based, the order of the contact sheet
    count: int
    keys: tuple[str, ...]  # the settings that tell the variations apart, as manifest keys
    shares_seed: bool  # takes the seed of the group's first variation (a sweep without seed)
    numbered: bool  # its seed is drawn: it is told apart by its number (in the settingsHash)
    pick: Pick | None = None

    @property
    def played(self) -> bool:
        """Whether the export plays it, as far as the manifest alone tells: the picked one, or
        the first until a pick (a pick by a drawn seed is decided at intake)."""
        if self.pick is None or self.pick.number is None:
            return self.number == 1
        return self.number == self.pick.number


def variation_label(keys: Iterable[str], seed: int, cfg: float, steps: int) -> str:
    """What tells a variation apart, for its tile on the contact sheet: ``cfg 7 · steps 25``."""
    values = {"seed": str(seed), "cfg": f"{cfg:g}", "steps": str(steps)}
    return " · ".join(f"{key} {values[key]}" for key in keys)


@dataclass(frozen=True, slots=True)
class SheetSpec:
    """A contact sheet of one clip's variations: these of the export job's input clips (by
    position, in the sheet's order), each labelled with the values of ``keys``."""

    positions: tuple[int, ...]
    keys: tuple[str, ...]

    def to_json(self) -> dict[str, Any]:
        return {"positions": list(self.positions), "keys": list(self.keys)}

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> SheetSpec:
        return cls(tuple(int(p) for p in data["positions"]), tuple(str(k) for k in data["keys"]))


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

    @property
    def extension(self) -> str:
        """The output's file extension: a clip delivered as it is is remuxed to MP4."""
        return "mp4" if self.deliver_as_is else self.format.extension

    def to_json(self) -> dict[str, Any]:
        return _plain_dict(asdict(self))

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> ExportSpec:
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


@dataclass(frozen=True, slots=True)
class GenerateRequest:
    """A generate job: make (or import) this clip's video."""

    clip: ClipSpec

    def to_json(self) -> dict[str, Any]:
        return {"clip": self.clip.to_json()}

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> GenerateRequest:
        return cls(ClipSpec.from_json(data["clip"]))


@dataclass(frozen=True, slots=True)
class ExportRequest:
    """An export job: join the project's clips as ``export`` says, at the project's size and
    rate, into ``outbox``."""

    export: ExportSpec
    outbox: str
    width: int
    height: int
    frame_rate: int
    # With contact sheets the job's input clips are the played ones, then the variations that
    # only the sheets show: ``joined`` says how many are played (0: all of them).
    joined: int = 0
    sheets: tuple[SheetSpec, ...] = ()

    @property
    def size(self) -> tuple[int, int]:
        return self.width, self.height

    def played(self, inputs: Sequence[_T]) -> list[_T]:
        """Of the job's input clips (ids, or anything in their order), the ones it joins."""
        return list(inputs[: self.joined] if self.joined else inputs)

    def to_json(self) -> dict[str, Any]:
        data: dict[str, Any] = {
            "export": self.export.to_json(),
            "outbox": self.outbox,
            "width": self.width,
            "height": self.height,
            "frameRate": self.frame_rate,
        }
        if self.sheets:  # left out otherwise, so requests of before sheets read back equal
            data |= {"joined": self.joined, "sheets": [s.to_json() for s in self.sheets]}
        return data

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> ExportRequest:
        return cls(
            export=ExportSpec.from_json(data["export"]),
            outbox=str(data["outbox"]),
            width=int(data["width"]),
            height=int(data["height"]),
            frame_rate=int(data["frameRate"]),
            joined=int(data.get("joined", 0)),
            sheets=tuple(SheetSpec.from_json(s) for s in data.get("sheets", ())),
        )


JobRequest = GenerateRequest | ExportRequest


@dataclass(frozen=True, slots=True)
class JobOutputs:
    """The final paths of the files a job makes, recorded before any is renamed into place, so
    a worker that dies between the rename and the database update is followed by one that
    finds them instead of leaving orphans."""

    clip: str | None = None
    thumbnail: str | None = None
    export: str | None = None
    recipe: str | None = None  # the export's sidecar NAME.json, published before the video
    sheets: tuple[str, ...] = ()  # contact sheets (.mp4; each has a .png of the same name)
    error: str | None = None  # a failed export's report in the outbox, written once

    def to_json(self) -> dict[str, Any]:
        data = {k: v for k, v in asdict(self).items() if v is not None and k != "sheets"}
        if self.sheets:
            data["sheets"] = list(self.sheets)
        return data

    @classmethod
    def from_json(cls, data: Mapping[str, Any] | None) -> JobOutputs:
        values = dict(data or {})
        sheets = tuple(str(s) for s in values.pop("sheets", None) or ())
        known = {f.name for f in fields(cls)}
        return cls(**{k: str(v) for k, v in values.items() if k in known and v}, sheets=sheets)


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


def clip_spec_as_manifest(spec: ClipSpec) -> dict[str, Any]:
    """A resolved clip in the manifest's own words (camelCase keys, the seed drawn, full model
    names), its inputs named by their stored file name: what the status page shows and what
    reproduces the clip. No folder of this machine appears in it."""
    if spec.mode is GenerationMode.IMPORTED:
        return {"name": spec.clip_name, "video": Path(spec.video or "").name}
    values = asdict(spec)
    clip = {key: values[name] for name, key in _MANIFEST_KEYS.items()}
    clip["prompt"], clip["negativePrompt"] = _braces(spec.prompt), _braces(spec.negative_prompt)
    if spec.prompt_schedule:
        schedule = {k.frame: _braces(k.prompt) for k in spec.prompt_schedule}
        clip = {("prompts" if k == "prompt" else k): v for k, v in clip.items()}
        clip["prompts"] = schedule
    if spec.motion_loras:
        clip["motionLora"] = [{"name": m.name, "strength": m.strength} for m in spec.motion_loras]
    if spec.mode is GenerationMode.IMAGE_TO_VIDEO:
        clip["image"] = Path(spec.reference_image or "").name
        clip.update({key: values[name] for name, key in _IMAGE_KEYS.items()})
    return clip


def _braces(text: str) -> str:
    """A resolved prompt as a manifest writes it: its braces doubled, so that reading it again
    takes none of them for a var."""
    return text.replace("{", "{{").replace("}", "}}")


def export_spec_as_manifest(spec: ExportSpec) -> dict[str, Any] | None:
    """The manifest's ``export`` section that asks for ``spec`` again: the engines as intake
    decided them (never ``auto``, so the answer does not depend on what is reachable then).
    None for a lone clip delivered as it is, which is what leaving the section out asks."""
    if spec.deliver_as_is:
        return None
    section: dict[str, Any] = {}
    if spec.transition.type is not TransitionType.NONE:
        transition = {"type": spec.transition.type.value, "duration": spec.transition.duration_sec}
        if spec.transition.type is TransitionType.WIPE:
            transition["direction"] = spec.transition.direction
        section["transition"] = transition
    if spec.upscale is not None:
        upscale = spec.upscale
        section["upscale"] = {
            "scale": upscale.scale,
            "engine": upscale.engine.value,
            "model": upscale.model,
        }
    if spec.interpolate is not None:
        interpolate = spec.interpolate
        section["interpolate"] = {
            "fps": interpolate.fps,
            "engine": interpolate.engine.value,
            "model": interpolate.model,
        }
    return {**section, "format": spec.format.value, "quality": spec.quality.value}


# "WxH" in pixels, as config.yaml's generation.resolution spells it.
