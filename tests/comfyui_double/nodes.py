"""What each simulated node does: shapes it passes on, progress it reports, files it writes.

There are no tensors: an IMAGE is ``Frames(width, height, count)``, a LATENT is ``Latent`` with
pixel sizes, and models are opaque ``Handle``s. That is enough to trace sizes and frame counts
through text-to-video, upscale, interpolation and IPAdapter graphs and to write outputs of the
right size. Unknown classes fall back to passing a same-typed input through.
"""

from __future__ import annotations

import asyncio
import math
import random
import re
import string
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from tests.comfyui_double import media


@dataclass(frozen=True)
class Frames:
    width: int
    height: int
    count: int

    def __str__(self) -> str:
        return f"tensor(shape=[{self.count}, {self.height}, {self.width}, 3])"


@dataclass(frozen=True)
class Latent:
    width: int
    height: int
    count: int

    def __str__(self) -> str:
        return (
            f"{{'samples': tensor(shape=[{self.count}, 4, {self.height // 8}, {self.width // 8}])}}"
        )


@dataclass(frozen=True)
class Handle:
    kind: str
    detail: str = ""

    def __str__(self) -> str:
        return f"<{self.kind} {self.detail}>".replace(" >", ">")


@dataclass
class NodeResult:
    outputs: tuple[Any, ...]
    ui: dict[str, Any] | None = None


class NodeFailure(Exception):
    """An execution-time error with the exception type a real node would have raised."""

    def __init__(self, message: str, exception_type: str = "RuntimeError") -> None:
        super().__init__(message)
        self.exception_type = exception_type


class Context(Protocol):
    """What a node needs from the executor."""

    node_id: str
    class_type: str
    output_types: tuple[Any, ...]
    step_seconds: float

    async def progress(self, value: int, maximum: int) -> None: ...

    def directory(self, kind: str) -> Path: ...

    def resolve_input(self, name: str) -> Path | None: ...


Behaviour = Callable[[Context, dict[str, Any]], Awaitable[NodeResult]]
SAMPLERS = {"KSampler", "KSamplerAdvanced", "KSampler (Efficient)", "KSamplerAdvanced (Efficient)"}
DEFAULT_SIZE = 512


def _frames(value: Any) -> Frames:
    if isinstance(value, Frames):
        return value
    if isinstance(value, Latent):
        return Frames(value.width, value.height, value.count)
    return Frames(DEFAULT_SIZE, DEFAULT_SIZE, 1)


def _latent(value: Any) -> Latent:
    if isinstance(value, Latent):
        return value
    if isinstance(value, Frames):
        return Latent(value.width, value.height, value.count)
    return Latent(DEFAULT_SIZE, DEFAULT_SIZE, 1)


async def empty_latent(ctx: Context, inputs: dict[str, Any]) -> NodeResult:
    return NodeResult((Latent(inputs["width"], inputs["height"], inputs.get("batch_size", 1)),))


async def empty_image(ctx: Context, inputs: dict[str, Any]) -> NodeResult:
    return NodeResult((Frames(inputs["width"], inputs["height"], inputs.get("batch_size", 1)),))


async def sampler(ctx: Context, inputs: dict[str, Any]) -> NodeResult:
    steps = int(inputs.get("steps", 1))
    if ctx.class_type == "KSamplerAdvanced":
        end = int(inputs.get("end_at_step", steps))
        steps = max(0, min(steps, end) - int(inputs.get("start_at_step", 0)))
    for step in range(1, steps + 1):
        await _sleep(ctx.step_seconds)
        await ctx.progress(step, steps)
    return NodeResult((_latent(inputs.get("latent_image")),))


async def vae_decode(ctx: Context, inputs: dict[str, Any]) -> NodeResult:
    return NodeResult((_frames(inputs.get("samples")),))


async def vae_encode(ctx: Context, inputs: dict[str, Any]) -> NodeResult:
    return NodeResult((_latent(inputs.get("pixels")),))


async def load_image(ctx: Context, inputs: dict[str, Any]) -> NodeResult:
    path = ctx.resolve_input(str(inputs["image"]))
    if path is None:
        raise NodeFailure(f"No such file: {inputs['image']}", "FileNotFoundError")
    width, height = await media.probe_image(path)
    return NodeResult((Frames(width, height, 1), Frames(width, height, 1)))


def _loaded_count(source: media.VideoProbe, inputs: dict[str, Any]) -> tuple[int, float]:
    """Frames VHS_LoadVideo yields, and their rate, after force_rate/skip/nth/cap."""
    rate = float(inputs.get("force_rate") or 0) or source.fps
    count = source.frames
    if rate != source.fps and source.fps > 0:
        count = max(1, math.ceil(source.duration * rate - 1e-6))
    count = max(0, count - int(inputs.get("skip_first_frames") or 0))
    nth = max(1, int(inputs.get("select_every_nth") or 1))
    count = math.ceil(count / nth)
    cap = int(inputs.get("frame_load_cap") or 0)
    if cap > 0:
        count = min(count, cap)
    return count, rate / nth


def _loaded_size(source: media.VideoProbe, inputs: dict[str, Any]) -> tuple[int, int]:
    width, height = int(inputs.get("custom_width") or 0), int(inputs.get("custom_height") or 0)
    if width == 0 and height == 0:
        width, height = source.width, source.height
    elif width == 0:
        width = max(1, round(source.width * height / source.height))
    elif height == 0:
        height = max(1, round(source.height * width / source.width))
    align = {"AnimateDiff": 8, "Mochi": 16, "LTXV": 32, "Hunyuan": 16, "Cosmos": 16, "Wan": 16}
    step = align.get(str(inputs.get("format", "None")), 1)
    return max(step, width // step * step), max(step, height // step * step)


async def load_video(ctx: Context, inputs: dict[str, Any]) -> NodeResult:
    name = str(inputs["video"])
    path = ctx.resolve_input(name) if ctx.class_type == "VHS_LoadVideo" else Path(name)
    if path is None or not path.is_file():
        raise NodeFailure(f"No such file: {name}", "FileNotFoundError")
    source = await media.probe_video(path)
    count, rate = _loaded_count(source, inputs)
    if count == 0:
        raise NodeFailure("No frames generated", "RuntimeError")
    width, height = _loaded_size(source, inputs)
    for frame in range(1, count + 1):
        await ctx.progress(frame, count)
    info = {
        "source_fps": source.fps, "source_frame_count": source.frames,
        "source_duration": source.duration, "source_width": source.width,
        "source_height": source.height, "loaded_fps": rate, "loaded_frame_count": count,
        "loaded_duration": count / rate if rate else 0.0, "loaded_width": width,
        "loaded_height": height,
    }  # fmt: skip
    return NodeResult((Frames(width, height, count), count, Handle("AUDIO"), info))


def model_scale(model: Any) -> int:
    """Scale of an upscale model from its name: RealESRGAN_x4plus is 4x, 'x2'/'2x' names 2x."""
    match = re.search(r"(?:x(\d)|(\d)x)", getattr(model, "detail", ""), re.IGNORECASE)
    return int(match.group(1) or match.group(2)) if match else 4


async def upscale_with_model(ctx: Context, inputs: dict[str, Any]) -> NodeResult:
    image = _frames(inputs.get("image"))
    scale = model_scale(inputs.get("upscale_model"))
    total = media.tiles(image.width, image.height) * image.count
    for tile in range(1, total + 1):
        await _sleep(ctx.step_seconds / 4)
        await ctx.progress(tile, total)
    return NodeResult((Frames(image.width * scale, image.height * scale, image.count),))


async def scale_by(ctx: Context, inputs: dict[str, Any]) -> NodeResult:
    image = _frames(inputs.get("image"))
    factor = float(inputs.get("scale_by", 1.0))
    return NodeResult(
        (Frames(round(image.width * factor), round(image.height * factor), image.count),)
    )


async def scale_to(ctx: Context, inputs: dict[str, Any]) -> NodeResult:
    image = _frames(inputs.get("image"))
    width, height = int(inputs.get("width", 0)), int(inputs.get("height", 0))
    if width == 0 and height == 0:
        width, height = image.width, image.height
    elif width == 0:
        width = max(1, round(image.width * height / image.height))
    elif height == 0:
        height = max(1, round(image.height * width / image.width))
    return NodeResult((Frames(width, height, image.count),))


async def rife(ctx: Context, inputs: dict[str, Any]) -> NodeResult:
    image = _frames(inputs.get("frames"))
    if image.count < 2:
        raise NodeFailure("Expected at least 2 frames", "AssertionError")
    multiplier = int(inputs.get("multiplier", 2))
    return NodeResult((Frames(image.width, image.height, (image.count - 1) * multiplier + 1),))


# One keyframe of AnimateDiff-Evolved's JSON-like schedule as vidgen writes it: "FRAME": "PROMPT",
# then a comma or the end. A prompt runs to the next double quote: the node knows no escapes.
_KEYFRAME = re.compile(r'\s*"(\d+)"\s*:\s*"([^"]*)"\s*(?:,|\Z)')


async def prompt_scheduling(ctx: Context, inputs: dict[str, Any]) -> NodeResult:
    """ADE_PromptScheduling: the whole text must parse, as the node's parser requires, and its
    frames fit ``max_length`` (0: up to the last keyframe)."""
    text = str(inputs.get("prompts", "")).strip()
    if not text:
        raise NodeFailure("No text provided to Prompt Scheduling.", "Exception")
    frames, position = [], 0
    while position < len(text) and (match := _KEYFRAME.match(text, position)):
        frames.append(int(match.group(1)))
        position = match.end()
    if position < len(text) or not frames:
        message = f"Found 1 issue in prompt schedule: position {position}: {text[position:]!r}"
        raise NodeFailure(message, "Exception")
    length = int(inputs.get("max_length", 0)) or max(frames) + 1
    if late := [f for f in frames if f >= length]:
        raise NodeFailure(
            f"Found 1 issue with idxs: {late[0]} is past {length} frames", "Exception"
        )
    return NodeResult((Handle("CONDITIONING", f"{len(frames)} keyframes, {length} frames"),))


async def loader(ctx: Context, inputs: dict[str, Any]) -> NodeResult:
    name = next((str(v) for v in inputs.values() if isinstance(v, str)), "")
    return NodeResult(tuple(Handle(str(kind), name) for kind in ctx.output_types))


def _split_prefix(prefix: str) -> tuple[str, str]:
    subfolder, _, name = prefix.replace("\\", "/").rpartition("/")
    return subfolder, name


def next_counter(folder: Path, name: str, pattern: str) -> int:
    """1 + the highest counter of files named like ``pattern`` (``{name}``, ``(\\d+)`` groups)."""
    regex = re.compile(pattern.format(name=re.escape(name)))
    found = [int(m.group(1)) for p in folder.glob("*") if (m := regex.match(p.name))]
    return max(found, default=0) + 1


async def video_combine(ctx: Context, inputs: dict[str, Any]) -> NodeResult:
    image = _frames(inputs.get("images"))
    frames = image.count * 2 - 2 if inputs.get("pingpong") and image.count > 2 else image.count
    fps = float(inputs.get("frame_rate", 8.0))
    kind = "output" if inputs.get("save_output", True) else "temp"
    video_format = str(inputs.get("format", "image/gif"))
    subfolder, name = _split_prefix(str(inputs.get("filename_prefix", "AnimateDiff")))
    folder = _safe_folder(ctx.directory(kind), subfolder)
    counter = next_counter(folder, name, r"^{name}_(\d{{5}})\..+$")
    ext = media.extension_for(video_format)
    video = folder / f"{name}_{counter:05}.{ext}"
    png = folder / f"{name}_{counter:05}.png"
    for frame in range(1, frames + 1):
        await ctx.progress(frame, frames)
    pix_fmt = inputs.get("pix_fmt")
    crf = inputs.get("crf")
    await media.write_video(
        video,
        video_format,
        image.width,
        image.height,
        frames,
        fps,
        str(pix_fmt) if pix_fmt else None,
        png,
        crf=int(crf) if isinstance(crf, int | float) and not isinstance(crf, bool) else None,
    )
    entry = {
        "filename": video.name, "subfolder": subfolder, "type": kind, "format": video_format,
        "frame_rate": fps, "workflow": png.name, "fullpath": str(video),
    }  # fmt: skip
    return NodeResult((Handle("VHS_FILENAMES", video.name),), {"gifs": [entry]})


async def save_image(ctx: Context, inputs: dict[str, Any]) -> NodeResult:
    image = _frames(inputs.get("images"))
    if ctx.class_type == "PreviewImage":
        kind, prefix = (
            "temp",
            "ComfyUI_temp_" + "".join(random.choices(string.ascii_lowercase, k=5)),
        )
    else:
        kind, prefix = "output", str(inputs.get("filename_prefix", "ComfyUI"))
    subfolder, name = _split_prefix(prefix)
    folder = _safe_folder(ctx.directory(kind), subfolder)
    first = next_counter(folder, name, r"^{name}_(\d+)_")
    paths = [folder / f"{name}_{first + i:05}_.png" for i in range(image.count)]
    await media.write_pngs(paths, image.width, image.height)
    images = [{"filename": p.name, "subfolder": subfolder, "type": kind} for p in paths]
    return NodeResult((), {"images": images})


def _safe_folder(base: Path, subfolder: str) -> Path:
    folder = (base / subfolder).resolve()
    if not folder.is_relative_to(base.resolve()):
        raise NodeFailure("Saving image outside the output folder is not allowed.", "Exception")
    folder.mkdir(parents=True, exist_ok=True)
    return folder


async def passthrough(ctx: Context, inputs: dict[str, Any]) -> NodeResult:
    """Default: each output takes the first input of the same kind (IPAdapter passes MODEL on)."""
    outputs = []
    for kind in ctx.output_types:
        outputs.append(_first_of_kind(str(kind), inputs))
    return NodeResult(tuple(outputs))


def _first_of_kind(kind: str, inputs: dict[str, Any]) -> Any:
    for value in inputs.values():
        if kind == "IMAGE" and isinstance(value, Frames):
            return value
        if kind == "LATENT" and isinstance(value, Latent):
            return value
        if isinstance(value, Handle) and value.kind == kind:
            return value
    if kind == "IMAGE":
        return Frames(DEFAULT_SIZE, DEFAULT_SIZE, 1)
    return Handle(kind)


async def _sleep(seconds: float) -> None:
    await asyncio.sleep(max(0.0, seconds))


BEHAVIOURS: dict[str, Behaviour] = {
    "EmptyLatentImage": empty_latent,
    "ADE_EmptyLatentImageLarge": empty_latent,
    "EmptyImage": empty_image,
    "VAEDecode": vae_decode,
    "VAEDecodeTiled": vae_decode,
    "VAEEncode": vae_encode,
    "LoadImage": load_image,
    "VHS_LoadVideo": load_video,
    "VHS_LoadVideoPath": load_video,
    "ImageUpscaleWithModel": upscale_with_model,
    "ImageScaleBy": scale_by,
    "ImageScale": scale_to,
    "RIFE VFI": rife,
    "VHS_VideoCombine": video_combine,
    "SaveImage": save_image,
    "PreviewImage": save_image,
    "CheckpointLoaderSimple": loader,
    "VAELoader": loader,
    "UpscaleModelLoader": loader,
    "ADE_LoadAnimateDiffModel": loader,
    "IPAdapterModelLoader": loader,
    "CLIPVisionLoader": loader,
    "ADE_AnimateDiffLoRALoader": loader,
    "ADE_PromptScheduling": prompt_scheduling,
}


def behaviour_for(class_type: str) -> Behaviour:
    if class_type in SAMPLERS:
        return sampler
    return BEHAVIOURS.get(class_type, passthrough)
