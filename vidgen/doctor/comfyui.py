"""`vidgen doctor`'s look at each ComfyUI backend: does it answer, which version, are the node
packs vidgen's graphs use installed (the graphs are built and checked against the backend's own
``/object_info``), and is every model config.yaml names there."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, replace
from enum import StrEnum

from vidgen.config import Settings
from vidgen.errors import ComfyUIError
from vidgen.specs import (
    ClipSpec,
    Engine,
    GenerationMode,
    InterpolateSpec,
    ModelKind,
    MotionLora,
    PromptKeyframe,
    UpscaleSpec,
    resolve_model_name,
)
from workflows import (
    ComfyUIClient,
    FrameChunk,
    Graph,
    build_image_to_video,
    build_interpolate,
    build_text_to_video,
    build_upscale,
    check_graph,
    installed_models_from_object_info,
)

# The version vidgen's graphs and docs/comfyui.md were checked against.
TESTED_VERSION = (0, 3, 64)
# The node pack a node class comes with, by the start of its name.
_PACKS = (
    ("ADE_", "ComfyUI-AnimateDiff-Evolved"),
    ("VHS_", "ComfyUI-VideoHelperSuite"),
    ("IPAdapter", "ComfyUI_IPAdapter_plus"),
    ("RIFE", "ComfyUI-Frame-Interpolation"),
)
# Where each kind of model goes under ComfyUI's models/ folder, and whether vidgen can do
# without it (image-to-video and the ComfyUI export engines are optional).
_FOLDERS = {
    ModelKind.CHECKPOINT: ("ComfyUI's models/checkpoints folder", True),
    ModelKind.VAE: ("ComfyUI's models/vae folder", True),
    ModelKind.MOTION_MODULE: ("ComfyUI's models/animatediff_models folder", True),
    ModelKind.IP_ADAPTER: ("ComfyUI's models/ipadapter folder", False),
    ModelKind.CLIP_VISION: ("ComfyUI's models/clip_vision folder", False),
    ModelKind.UPSCALE: ("ComfyUI's models/upscale_models folder", False),
    ModelKind.RIFE: ("the list RIFE VFI offers (it downloads the file itself)", False),
}


class Level(StrEnum):
    OK = "ok"
    WARNING = "warning"
    ERROR = "error"


@dataclass(frozen=True, slots=True)
class Finding:
    """One line of the doctor's report: what was checked, how it is, and what to do."""

    level: Level
    subject: str
    message: str

    def line(self) -> str:
        return f"{self.level.value:<8}{self.subject}: {self.message}"


def check_backends(settings: Settings) -> Iterator[Finding]:
    for url in settings.comfyui.urls:
        with ComfyUIClient(url, settings.comfyui) as client:
            yield from _check_backend(settings, client)


def _check_backend(settings: Settings, client: ComfyUIClient) -> Iterator[Finding]:
    subject = f"ComfyUI at {client.base_url}"
    try:
        stats = client.system_stats()
        object_info = client.object_info()
    except ComfyUIError as exc:
        yield Finding(
            Level.ERROR,
            subject,
            f"does not answer ({exc.user_message}): start ComfyUI there, or fix comfyui.urls",
        )
        return
    yield _version(subject, stats.comfyui_version)
    yield from _nodes(subject, settings, object_info)
    yield from _models(subject, settings, object_info)


def _version(subject: str, version: str) -> Finding:
    try:
        numbers = tuple(int(part) for part in version.split(".")[:3])
    except ValueError:
        numbers = ()
    tested = ".".join(map(str, TESTED_VERSION))
    if numbers and numbers < TESTED_VERSION:
        return Finding(
            Level.WARNING,
            subject,
            f"ComfyUI {version} is older than {tested}, the version vidgen is tested with: "
            "update ComfyUI",
        )
    return Finding(Level.OK, subject, f"answers, ComfyUI {version or '(version unknown)'}")


def _sample_graphs(settings: Settings) -> dict[str, Graph]:
    """One graph of each kind vidgen sends, with config.yaml's models."""
    models, generation = settings.models, settings.generation
    clip = ClipSpec(
        clip_name="doctor",
        mode=GenerationMode.TEXT_TO_VIDEO,
        prompt="a test",
        frames=generation.frames,
        frame_rate=generation.frame_rate,
        checkpoint=models.checkpoint,
        vae=models.vae,
        motion_module=models.motion_module,
        ip_adapter=models.ip_adapter,
        clip_vision=models.clip_vision,
    )
    upscale = UpscaleSpec(scale=2, engine=Engine.COMFYUI, model=models.upscale)
    interpolate = InterpolateSpec(fps=24, engine=Engine.COMFYUI, model=models.rife)
    # The name is no setting of config.yaml: the nodes are checked, not the file.
    travel = replace(
        clip,
        prompt_schedule=(PromptKeyframe(0, "a test"), PromptKeyframe(1, "another test")),
        motion_loras=(MotionLora("v2_lora_ZoomIn.ckpt"),),
    )
    return {
        "text-to-video": build_text_to_video(clip, "doctor"),
        "prompt travel with a motion LoRA": build_text_to_video(travel, "doctor"),
        "image-to-video": build_image_to_video(clip, "doctor", "doctor.png"),
        "Real-ESRGAN upscale": build_upscale(
            "doctor.mp4", upscale, FrameChunk(0, 0, 16), 8, "doctor"
        ),
        "RIFE interpolation": build_interpolate("doctor.mp4", interpolate, 8, "doctor"),
    }


def _nodes(subject: str, settings: Settings, object_info: dict[str, object]) -> Iterator[Finding]:
    graphs = _sample_graphs(settings)
    used = {node["class_type"] for graph in graphs.values() for node in graph.values()}
    missing = sorted(used - set(object_info))
    packs = dict.fromkeys(_pack(name) for name in missing)
    for pack in packs:
        names = ", ".join(n for n in missing if _pack(n) == pack)
        yield Finding(
            Level.ERROR,
            subject,
            f"nodes {names} are missing: install {pack} (ComfyUI Manager, or clone it into "
            "custom_nodes) and restart ComfyUI",
        )
    if missing:
        return
    for what, graph in graphs.items():
        if problems := check_graph(graph, object_info):
            yield Finding(
                Level.WARNING,
                subject,
                f"the {what} graph does not fit its nodes ({problems[0]}): update the node packs",
            )
            return
    yield Finding(Level.OK, subject, f"has the {len(used)} node types vidgen's graphs use")


def _pack(class_type: str) -> str:
    for prefix, pack in _PACKS:
        if class_type.startswith(prefix):
            return pack
    return "a newer ComfyUI (a core node)"


def _models(subject: str, settings: Settings, object_info: dict[str, object]) -> Iterator[Finding]:
    installed = installed_models_from_object_info(object_info)
    absent = []
    for kind, (folder, needed) in _FOLDERS.items():
        name = str(getattr(settings.models, kind.attribute))
        if resolve_model_name(name, installed.names(kind)) is None:
            absent.append(kind)
            level = Level.ERROR if needed else Level.WARNING
            use = "" if needed else " (needed only by what uses it)"
            yield Finding(
                level,
                subject,
                f"{kind.config_key} '{name}' is not installed{use}: put it in {folder}, "
                "or name an installed one in config.yaml",
            )
    if not absent:
        yield Finding(Level.OK, subject, "has every model config.yaml names")
