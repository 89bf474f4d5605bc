"""A schema-valid manifest turned into typed values with every default applied, plus the checks
the schema cannot express (sizes, durations, files, installed models).

Defaults come from the clip itself, then the manifest's ``defaults``, then config.yaml
(``Settings.generation`` / ``Settings.models``).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, cast

from vidgen.config import Settings
from vidgen.errors import Problem
from vidgen.ffmpeg import MediaInfo
from vidgen.naming import project_name
from vidgen.specs import (
    IMAGE_TO_VIDEO_MODELS,
    ClipSpec,
    GenerationMode,
    InstalledModels,
    ModelKind,
    MotionLora,
    PromptKeyframe,
    Variation,
    models_for,
    parse_resolution,
    resolve_model_name,
)
from watcher.references import Kind, Reference, ReferenceReader
from watcher.vars import substitute, unknown_message
from watcher.yaml_lines import PathKey, YamlDocument, format_path

MIN_SIDE = 64
MAX_SIDE = 2048
_LISTED_MODELS = 12


@dataclass(frozen=True, slots=True)
class ManifestClip:
    """One clip of a manifest: its spec with defaults applied and what intake still decides."""

    spec: ClipSpec  # seed 0 while ``seed`` is None
    seed: int | None  # None: omitted or "random", drawn (or kept from a matching clip) at intake
    source: Path | None  # the referenced image or video inside the inbox
    source_text: str | None  # that path as the manifest wrote it
    duration_sec: float | None  # None when an imported video could not be probed (yet)
    has_audio: bool = False
    reference: Reference | None = None  # the file as read; staged: vidgen's copy of it
    variation: Variation | None = None  # one of a clip's ``variations`` or ``sweep``

    @property
    def played(self) -> bool:
        """Whether the export plays this clip (see ``Variation.played``)."""
        return self.variation is None or self.variation.played

    @property
    def media(self) -> MediaInfo | None:
        """An imported video as ffprobe read vidgen's copy of it (None before the copy)."""
        staged = self.reference.staged if self.reference is not None else None
        return staged.media if staged is not None else None


@dataclass
class Context:
    """What resolving one manifest needs and collects."""

    document: YamlDocument
    settings: Settings
    reader: ReferenceReader
    models: InstalledModels | None  # None: no ComfyUI reachable, names unchecked
    # Where a setting the inbox's preset gave comes from ("preset of inbox gif"), else None.
    preset_source: Callable[[PathKey], str | None] = lambda _path: None
    problems: list[Problem] = field(default_factory=list)
    missing: list[Problem] = field(default_factory=list)
    references: list[Reference] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    @property
    def data(self) -> dict[str, Any]:
        return cast(dict[str, Any], self.document.data)

    @property
    def vars(self) -> dict[str, str]:
        return {str(k): str(v) for k, v in (self.data.get("vars") or {}).items()}

    def text(self, path: PathKey, value: Any) -> str:
        """A prompt's text with the manifest's ``vars`` substituted; unknown names reported."""
        text, unknown = substitute(str(value), self.vars)
        for name in unknown:
            self.problem(path, unknown_message(name, self.vars))
        return text

    def problem(self, path: PathKey, message: str, *, key: bool = False) -> None:
        line = self.document.line_of(path, key=key) if path else 1
        if source := self.preset_source(path):
            message += f" (set by the {source} in config.yaml)"
        found = Problem(format_path(path), line, message)
        if found not in self.problems:
            self.problems.append(found)


def display_name(data: Mapping[str, Any], file_name: str) -> str:
    name = str(data.get("project") or "").strip()
    return name or Path(file_name).stem or file_name


def resolve_size(ctx: Context) -> tuple[int, int]:
    """The project's resolution: the manifest's, else config.yaml's; checked for multiples of 8."""
    generation = ctx.settings.generation
    text = ctx.data.get("resolution")
    if text is None:
        return generation.width, generation.height
    width, height = parse_resolution(str(text))
    if not all(MIN_SIDE <= n <= MAX_SIDE and n % 8 == 0 for n in (width, height)):
        ctx.problem(
            ("resolution",),
            f"width and height must each be a multiple of 8 from {MIN_SIDE} to {MAX_SIDE}, "
            f"got {text}",
        )
    return width, height


def clip_entries(data: Mapping[str, Any]) -> list[tuple[PathKey, Mapping[str, Any]]]:
    """The clips with their paths: the ``clips`` list, or the top level as one shorthand clip."""
    if "clips" in data:
        return [(("clips", i), clip) for i, clip in enumerate(data["clips"])]
    return [((), data)]


def setting(ctx: Context, path: PathKey, clip: Mapping[str, Any], key: str) -> tuple[Any, PathKey]:
    """A clip field from the clip, else ``defaults``; the path says where it was written."""
    if key in clip:
        return clip[key], (*path, key)
    defaults = ctx.data.get("defaults") or {}
    if key in defaults:
        return defaults[key], ("defaults", key)
    return None, path


def resolve_clip(
    ctx: Context, index: int, path: PathKey, clip: Mapping[str, Any], size: tuple[int, int]
) -> ManifestClip:
    name = str(clip.get("name") or f"clip{index + 1}")
    if "video" in clip:
        return _imported_clip(ctx, path, clip, name)
    generation = ctx.settings.generation
    mode = GenerationMode.IMAGE_TO_VIDEO if "image" in clip else GenerationMode.TEXT_TO_VIDEO
    seed = _seed(ctx, path, clip)
    regenerate, _ = setting(ctx, path, clip, "regenerate")
    values = {key: setting(ctx, path, clip, key)[0] for key in _GENERATION_KEYS}
    frames = int(_or(values["frames"], generation.frames))
    prompt, schedule = _prompts(ctx, path, clip, frames)
    negative, where = setting(ctx, path, clip, "negativePrompt")
    spec = ClipSpec(
        clip_name=name,
        mode=mode,
        prompt=prompt,
        prompt_schedule=schedule,
        motion_loras=_motion_loras(ctx, path, clip),
        negative_prompt=ctx.text(where, _or(negative, generation.negative_prompt)),
        seed=seed or 0,
        steps=int(_or(values["steps"], generation.steps)),
        cfg=float(_or(values["cfg"], generation.cfg)),
        frames=frames,
        frame_rate=generation.frame_rate,
        width=size[0],
        height=size[1],
        ip_adapter_weight=float(_or(values["ipAdapterWeight"], generation.ip_adapter_weight)),
        regenerate=bool(regenerate),
        **_clip_models(ctx, path, clip, mode),
    )
    found = _reference_image(ctx, path, clip) if mode is GenerationMode.IMAGE_TO_VIDEO else None
    source = found.path if found is not None else None
    if source is not None:
        spec = replace(spec, reference_image=str(source))
    duration = spec.frames / spec.frame_rate
    text = str(clip["image"]) if "image" in clip else None
    return ManifestClip(spec, seed, source, text, duration, reference=found)


_GENERATION_KEYS = ("steps", "cfg", "frames", "ipAdapterWeight")
_NO_PROMPT = (
    "a clip needs a `prompt` (text-to-video, plus `image` for image-to-video) "
    "or a `video` to import"
)
_NO_PROMPT_AT_ALL = (
    "the manifest needs a `prompt`, a `video` to import, a list of `clips`, `cancel`, "
    "or only `priority` and `project`"
)


def _prompts(
    ctx: Context, path: PathKey, clip: Mapping[str, Any], frames: int
) -> tuple[str, tuple[PromptKeyframe, ...]]:
    """The clip's prompt, or its prompt travel (``prompts``, the clip's or the defaults')
    with a prompt that shows it: "0: a bud → 8: a flower"."""
    if "prompt" in clip:
        prompt = ctx.text((*path, "prompt"), clip["prompt"])
        if not prompt.strip():
            ctx.problem((*path, "prompt"), "the prompt is blank; describe what the clip shows")
        return prompt, ()
    given, where = setting(ctx, path, clip, "prompts")
    if given is None:
        ctx.problem(path, _NO_PROMPT if path else _NO_PROMPT_AT_ALL)
        return "", ()
    schedule = _schedule(ctx, where, given, frames)
    return " → ".join(f"{k.frame}: {k.prompt}" for k in schedule), schedule


def _schedule(
    ctx: Context, where: PathKey, given: Mapping[Any, Any], frames: int
) -> tuple[PromptKeyframe, ...]:
    """Keyframes checked as AnimateDiff-Evolved reads them: whole frame numbers from 0, rising,
    inside the clip, each prompt free of the double quote that ends it in the schedule text."""
    keyframes: list[PromptKeyframe] = []
    for key, value in given.items():
        at = (*where, str(key))
        frame = _frame_number(key)
        if frame is None:
            ctx.problem(at, f"a keyframe is a frame number such as 0 or 8, got {key!r}", key=True)
            continue
        if keyframes and frame <= keyframes[-1].frame:
            message = f"frame {frame} comes after frame {keyframes[-1].frame}: keyframes must rise"
            ctx.problem(at, message, key=True)
        if frame >= frames:
            message = (
                f"frame {frame} is past the clip's end: its {frames} frames are 0 to {frames - 1}"
            )
            ctx.problem(at, message, key=True)
        prompt = ctx.text(at, value)
        if not prompt.strip():
            ctx.problem(at, "the prompt is blank; describe what the clip shows")
        if '"' in prompt:
            ctx.problem(
                at,
                'a travelling prompt cannot hold a double quote ("), which ends it '
                "in AnimateDiff-Evolved's schedule; use ' instead",
            )
        keyframes.append(PromptKeyframe(frame, prompt))
    if keyframes and keyframes[0].frame != 0:
        first = (*where, str(next(iter(given))))
        ctx.problem(first, "the first keyframe must be frame 0, where the clip starts", key=True)
    return tuple(keyframes)


def _frame_number(key: Any) -> int | None:
    """A keyframe's frame: a whole number, also as text ("8"), as a recipe's JSON writes it."""
    if isinstance(key, int) and not isinstance(key, bool):
        return key if key >= 0 else None
    if isinstance(key, str) and key.isascii() and key.isdigit():
        return int(key)
    return None


def _motion_loras(ctx: Context, path: PathKey, clip: Mapping[str, Any]) -> tuple[MotionLora, ...]:
    """The clip's motion LoRAs (one, or a list), each checked against the backend's folder."""
    given, where = setting(ctx, path, clip, "motionLora")
    if given is None:
        return ()
    entries = list(enumerate(given)) if isinstance(given, list) else [(None, given)]
    loras = []
    for index, entry in entries:
        at = where if index is None else (*where, index)
        name = resolve_model(ctx, ModelKind.MOTION_LORA, str(entry["name"]), (*at, "name"))
        loras.append(MotionLora(name, float(entry.get("strength", 1.0))))
    return tuple(loras)


def _seed(ctx: Context, path: PathKey, clip: Mapping[str, Any]) -> int | None:
    """The clip's seed; None: omitted or ``random``. The schema counts 42.0 as a whole number,
    but a seed written with a decimal point was most likely meant otherwise: it is refused."""
    value, where = setting(ctx, path, clip, "seed")
    if isinstance(value, float):
        ctx.problem(
            where, f"must be a whole number without a decimal point ({value:.0f}), or random"
        )
        return None
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def _or(value: Any, default: Any) -> Any:
    return default if value is None else value


def _clip_models(
    ctx: Context, path: PathKey, clip: Mapping[str, Any], mode: GenerationMode
) -> dict[str, str]:
    resolved: dict[str, str] = {}
    for kind in IMAGE_TO_VIDEO_MODELS:
        given, where = setting(ctx, path, clip, kind.value)
        default = default_model(ctx, kind)
        if kind not in models_for(mode):
            resolved[kind.attribute] = resolve_model(ctx, kind, str(given or default), None)
        elif given is None:
            resolved[kind.attribute] = resolve_model(ctx, kind, default, (), default=True)
        else:
            resolved[kind.attribute] = resolve_model(ctx, kind, str(given), where)
    return resolved


def default_model(ctx: Context, kind: ModelKind) -> str:
    """config.yaml's model of this kind."""
    return str(getattr(ctx.settings.models, kind.attribute))


def resolve_model(
    ctx: Context, kind: ModelKind, name: str, path: PathKey | None, *, default: bool = False
) -> str:
    """The full installed name of a model (``rife47`` → ``rife47.pth``).

    With no catalogue (no ComfyUI reachable) a name is completed from config.yaml's default
    of the same kind only. ``path`` None means the model is not used here: nothing is checked;
    ``default`` means the name is config.yaml's, not the manifest's.
    """
    # A motion LoRA has no default in config.yaml to complete a name from.
    configured = [str(getattr(ctx.settings.models, kind.attribute, ""))]
    if ctx.models is None or path is None:
        return resolve_model_name(name, configured) or name
    installed = ctx.models.names(kind)
    found = resolve_model_name(name, installed)
    if found is not None:
        return found
    listed = ", ".join(sorted(installed)[:_LISTED_MODELS]) or "none"
    if len(installed) > _LISTED_MODELS:
        listed += f", … ({len(installed)} in all)"
    if default:
        message = (
            f"the default {kind.words} '{name}' ({kind.config_key} in config.yaml) is not "
            f"installed in ComfyUI; installed: {listed}"
        )
        ctx.problem((), message)
    else:
        ctx.problem(path, f"{kind.words} '{name}' is not installed in ComfyUI; installed: {listed}")
    return name


def _reference_image(ctx: Context, path: PathKey, clip: Mapping[str, Any]) -> Reference | None:
    return _read(ctx, (*path, "image"), str(clip["image"]), Kind.IMAGE)


def _read(ctx: Context, where: PathKey, text: str, kind: Kind) -> Reference | None:
    found = ctx.reader.read(text, kind)
    if found.problem is not None:
        ctx.problem(where, found.message)
        if found.missing:
            ctx.missing.append(ctx.problems[-1])
        return None
    ctx.references.append(found)
    return found


def _imported_clip(ctx: Context, path: PathKey, clip: Mapping[str, Any], name: str) -> ManifestClip:
    text = str(clip["video"])
    found = _read(ctx, (*path, "video"), text, Kind.VIDEO)
    spec = ClipSpec(
        clip_name=name, mode=GenerationMode.IMPORTED, regenerate=bool(clip.get("regenerate"))
    )
    source = found.path if found is not None else None
    info = found.staged.media if found is not None and found.staged is not None else None
    if info is None:  # not readable, or not read yet: before the claim nothing is copied
        return ManifestClip(spec, None, source, text, None, reference=found)
    if info.has_audio:
        ctx.notes.append(f"{name}: the audio of {text} is dropped (outputs are silent)")
    spec = replace(
        spec,
        video=str(source),
        frames=info.frame_count,
        frame_rate=max(1, round(info.fps)),
        width=info.width,
        height=info.height,
    )
    return ManifestClip(spec, None, source, text, info.duration_sec, info.has_audio, found)


def resolved_project(ctx: Context, file_name: str) -> tuple[str, str, str]:
    """Display name, projectName and description."""
    display = display_name(ctx.data, file_name)
    return display, project_name(display), str(ctx.data.get("description") or "")
