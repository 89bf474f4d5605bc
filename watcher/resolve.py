"""A schema-valid manifest turned into typed values with every default applied, plus the checks
the schema cannot express (sizes, durations, files, installed models).

Defaults come from the clip itself, then the manifest's ``defaults``, then config.yaml
(``Settings.generation`` / ``Settings.models``).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, cast

from vidgen.config import Settings
from vidgen.errors import Problem
from vidgen.naming import project_name
from vidgen.specs import ClipSpec, GenerationMode, parse_resolution
from watcher.references import image_problem, locate, probe_video
from watcher.yaml_lines import PathKey, YamlDocument, format_path

MIN_SIDE = 64
MAX_SIDE = 2048
MAX_OUTPUT_SIDE = 4096
_LISTED_MODELS = 12

# manifest key → (ModelSettings attribute and catalogue key, config.yaml key)
MODEL_FIELDS: dict[str, tuple[str, str]] = {
    "checkpoint": ("checkpoint", "models.checkpoint"),
    "vae": ("vae", "models.vae"),
    "motionModule": ("motion_module", "models.motionModule"),
    "ipAdapter": ("ip_adapter", "models.ipAdapter"),
    "clipVision": ("clip_vision", "models.clipVision"),
}
_IMAGE_ONLY_MODELS = ("ipAdapter", "clipVision")


@dataclass(frozen=True, slots=True)
class ManifestClip:
    """One clip of a manifest: its spec with defaults applied and what intake still decides."""

    spec: ClipSpec  # seed 0 while ``seed`` is None
    seed: int | None  # None: omitted or "random", drawn (or kept from a matching clip) at intake
    source: Path | None  # the referenced image or video inside the inbox
    source_text: str | None  # that path as the manifest wrote it
    duration_sec: float | None  # None when an imported video could not be probed
    has_audio: bool = False


@dataclass
class Context:
    """What resolving one manifest needs and collects."""

    document: YamlDocument
    settings: Settings
    inbox: Path
    models: Mapping[str, Sequence[str]] | None  # None: no ComfyUI reachable, names unchecked
    problems: list[Problem] = field(default_factory=list)
    missing: list[Problem] = field(default_factory=list)
    references: list[Path] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    @property
    def data(self) -> dict[str, Any]:
        return cast(dict[str, Any], self.document.data)

    def problem(self, path: PathKey, message: str, *, key: bool = False) -> None:
        line = self.document.line_of(path, key=key) if path else 1
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
    prompt = str(clip["prompt"])
    if not prompt.strip():
        ctx.problem((*path, "prompt"), "the prompt is blank; describe what the clip shows")
    mode = GenerationMode.IMAGE_TO_VIDEO if "image" in clip else GenerationMode.TEXT_TO_VIDEO
    seed_value, _ = setting(ctx, path, clip, "seed")
    regenerate, _ = setting(ctx, path, clip, "regenerate")
    values = {key: setting(ctx, path, clip, key)[0] for key in _GENERATION_KEYS}
    seed = seed_value if isinstance(seed_value, int) and not isinstance(seed_value, bool) else None
    spec = ClipSpec(
        clip_name=name,
        mode=mode,
        prompt=prompt,
        negative_prompt=_or(values["negativePrompt"], generation.negative_prompt),
        seed=seed or 0,
        steps=int(_or(values["steps"], generation.steps)),
        cfg=float(_or(values["cfg"], generation.cfg)),
        frames=int(_or(values["frames"], generation.frames)),
        frame_rate=generation.frame_rate,
        width=size[0],
        height=size[1],
        ip_adapter_weight=float(_or(values["ipAdapterWeight"], generation.ip_adapter_weight)),
        regenerate=bool(regenerate),
        **_clip_models(ctx, path, clip, mode),
    )
    source = _reference_image(ctx, path, clip) if mode is GenerationMode.IMAGE_TO_VIDEO else None
    if source is not None:
        spec = replace(spec, reference_image=str(source))
    duration = spec.frames / spec.frame_rate
    text = str(clip["image"]) if "image" in clip else None
    return ManifestClip(spec, seed, source, text, duration)


_GENERATION_KEYS = ("negativePrompt", "steps", "cfg", "frames", "ipAdapterWeight")


def _or(value: Any, default: Any) -> Any:
    return default if value is None else value


def _clip_models(
    ctx: Context, path: PathKey, clip: Mapping[str, Any], mode: GenerationMode
) -> dict[str, str]:
    resolved: dict[str, str] = {}
    for key, (attribute, config_key) in MODEL_FIELDS.items():
        given, where = setting(ctx, path, clip, key)
        checked = mode is GenerationMode.IMAGE_TO_VIDEO or key not in _IMAGE_ONLY_MODELS
        default = str(getattr(ctx.settings.models, attribute))
        if not checked:
            resolved[attribute] = resolve_model(ctx, attribute, str(given or default), None, None)
        elif given is None:
            resolved[attribute] = resolve_model(ctx, attribute, default, (), config_key)
        else:
            resolved[attribute] = resolve_model(ctx, attribute, str(given), where, None)
    return resolved


def resolve_model(
    ctx: Context, kind: str, name: str, path: PathKey | None, config_key: str | None
) -> str:
    """The full installed name of a model (``rife47`` → ``rife47.pth``).

    With no catalogue (no ComfyUI reachable) a name is completed from config.yaml's default
    of the same kind only. ``path`` None means the model is not used here: nothing is checked.
    """
    default = str(getattr(ctx.settings.models, kind, ""))
    if ctx.models is None or (path is None and config_key is None):
        return default if same_model(name, default) else name
    installed = list(ctx.models.get(kind, ()))
    for candidate in installed:
        if same_model(name, candidate):
            return candidate
    listed = ", ".join(sorted(installed)[:_LISTED_MODELS]) or "none"
    if len(installed) > _LISTED_MODELS:
        listed += f", … ({len(installed)} in all)"
    label = kind.replace("_", " ")
    if config_key is not None:
        message = (
            f"the default {label} '{name}' ({config_key} in config.yaml) is not installed in "
            f"ComfyUI; installed: {listed}"
        )
        ctx.problem((), message)
    else:
        ctx.problem(
            path or (), f"{label} '{name}' is not installed in ComfyUI; installed: {listed}"
        )
    return name


def same_model(name: str, candidate: str) -> bool:
    """Whether ``name`` is ``candidate``, or ``candidate`` without its file extension."""
    if name == candidate:
        return True
    stem, dot, _ = candidate.rpartition(".")
    return bool(dot) and name == stem


def _reference_image(ctx: Context, path: PathKey, clip: Mapping[str, Any]) -> Path | None:
    where = (*path, "image")
    located = _located(ctx, where, str(clip["image"]))
    if located is not None and (reason := image_problem(located)) is not None:
        ctx.problem(where, f"{clip['image']} {reason}")
    return located


def _located(ctx: Context, where: PathKey, text: str) -> Path | None:
    located = locate(text, ctx.inbox)
    if located.problem is not None:
        message = located.problem if located.missing else f"{text} {located.problem}"
        ctx.problem(where, message)
        if located.missing:
            ctx.missing.append(ctx.problems[-1])
        return None
    assert located.path is not None  # a Located without a problem always has its path
    ctx.references.append(located.path)
    return located.path


def _imported_clip(ctx: Context, path: PathKey, clip: Mapping[str, Any], name: str) -> ManifestClip:
    where = (*path, "video")
    text = str(clip["video"])
    source = _located(ctx, where, text)
    spec = ClipSpec(
        clip_name=name, mode=GenerationMode.IMPORTED, regenerate=bool(clip.get("regenerate"))
    )
    if source is None:
        return ManifestClip(spec, None, None, text, None)
    info = probe_video(source)
    if isinstance(info, str):
        ctx.problem(where, info)
        return ManifestClip(spec, None, None, text, None)
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
    return ManifestClip(spec, None, source, text, info.duration_sec, info.has_audio)


def resolved_project(ctx: Context, file_name: str) -> tuple[str, str, str]:
    """Display name, projectName and description."""
    display = display_name(ctx.data, file_name)
    return display, project_name(display), str(ctx.data.get("description") or "")
