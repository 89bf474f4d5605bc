"""Prompt travel, vars and motion LoRAs: read from a manifest with every problem on its line,
built into graphs that fit the node schemas, refused at intake when the backend lacks the LoRA,
and a prompt-travel clip made end to end through the ComfyUI double."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from tests.fixtures.comfyui import ComfyUIServer, within
from tests.fixtures.database import make_settings
from tests.fixtures.inbox import drop
from tests.fixtures.pipeline import graphs_sent, wait_for
from tests.test_workflows_graphs import OBJECT_INFO, clip_spec, nodes_of, one, schema_problems
from vidgen.config import Settings, load_settings
from vidgen.db.session import Database
from vidgen.ffmpeg import probe
from vidgen.runtime import Services
from vidgen.specs import (
    ClipSpec,
    GenerationMode,
    InstalledModels,
    ModelKind,
    MotionLora,
    PromptKeyframe,
)
from watcher.intake import Intake, Outcome
from watcher.manifest import Manifest, ValidationResult, check_file
from workflows import build_image_to_video, build_text_to_video, check_graph
from workflows.catalogue import ModelCatalogue

TRAVEL = (
    "resolution: 64x64\n"
    "vars:\n  style: watercolor, soft light\n"
    "prompts:\n  0: a bud, {style}\n  8: a flower opening, {style}\n  15: a full bloom\n"
    "negativePrompt: '{style} is not {{wanted}}'\n"
    "motionLora: {name: v2_lora_ZoomIn, strength: 0.8}\n"
    "steps: 2\nseed: 4\n"
)
INSTALLED = InstalledModels(
    {
        ModelKind.CHECKPOINT: ("realisticVisionV51_v51VAE.safetensors",),
        ModelKind.VAE: ("vae-ft-mse-840000-ema-pruned.safetensors",),
        ModelKind.MOTION_MODULE: ("mm_sd_v15_v2.ckpt",),
        ModelKind.MOTION_LORA: ("v2_lora_ZoomIn.ckpt", "v2_lora_PanLeft.ckpt"),
    }
)


@pytest.fixture
def plain_settings(tmp_path: Path) -> Settings:
    (tmp_path / "inbox").mkdir()
    return load_settings(
        None,
        {},
        overrides={
            "storage": str(tmp_path / "storage"),
            "outbox": str(tmp_path / "outbox"),
            "inboxes": [{"path": str(tmp_path / "inbox")}],
        },
    )


def check(settings: Settings, text: str, models: InstalledModels | None = None) -> ValidationResult:
    path = settings.inboxes[0].path / "trip.yaml"
    path.write_text(text, encoding="utf-8")
    return check_file(path, settings, (lambda: models) if models is not None else None)


def test_prompt_travel_vars_and_a_motion_lora_are_read(plain_settings: Settings) -> None:
    result = check(plain_settings, TRAVEL, INSTALLED)
    assert result.problems == (), result.format()
    assert isinstance(result.manifest, Manifest)
    (clip,) = result.manifest.clips
    assert clip.spec.prompt_schedule == (
        PromptKeyframe(0, "a bud, watercolor, soft light"),
        PromptKeyframe(8, "a flower opening, watercolor, soft light"),
        PromptKeyframe(15, "a full bloom"),
    )
    assert clip.spec.prompt.startswith("0: a bud, watercolor")
    assert clip.spec.negative_prompt == "watercolor, soft light is not {wanted}"
    assert clip.spec.motion_loras == (MotionLora("v2_lora_ZoomIn.ckpt", 0.8),)
    assert ClipSpec.from_json(json.loads(json.dumps(clip.spec.to_json()))) == clip.spec


def test_defaults_give_prompt_travel_and_loras_to_clips_without_their_own(
    plain_settings: Settings,
) -> None:
    text = (
        "defaults:\n  prompts: {0: dawn, 12: dusk}\n"
        "  motionLora: [{name: v2_lora_ZoomIn.ckpt}, {name: v2_lora_PanLeft, strength: 0.5}]\n"
        "clips:\n  - seed: 1\n  - prompt: noon\n"
    )
    result = check(plain_settings, text, INSTALLED)
    assert isinstance(result.manifest, Manifest), result.format()
    first, second = result.manifest.clips
    assert [k.frame for k in first.spec.prompt_schedule] == [0, 12]
    assert (second.spec.prompt, second.spec.prompt_schedule) == ("noon", ())
    assert second.spec.motion_loras == (
        MotionLora("v2_lora_ZoomIn.ckpt", 1.0),
        MotionLora("v2_lora_PanLeft.ckpt", 0.5),
    )


def test_every_prompt_travel_and_vars_problem_has_its_line(plain_settings: Settings) -> None:
    text = (
        "vars: {style: ink}\n"
        "clips:\n"
        "  - prompts:\n"
        "      2: a bud\n"
        "      1: 'x \" y'\n"
        "      40: 'z {nope}'\n"
        "      sun: b\n"
        "    frames: 16\n"
        "  - seed: 3\n"
        "  - prompt: '{{literal}} {undefined}'\n"
        "  - {prompt: a, prompts: {0: b}}\n"
    )
    assert check(plain_settings, text).format().splitlines() == [
        "trip.yaml:11: clips[3]: a clip has either `prompt` or `prompts` (prompt travel), "
        "not both, got a mapping"
    ]
    assert check(plain_settings, text.rsplit("  - {", 1)[0]).format().splitlines() == [
        "trip.yaml:4: clips[0].prompts.2: the first keyframe must be frame 0, where the clip "
        "starts",
        "trip.yaml:5: clips[0].prompts.1: frame 1 comes after frame 2: keyframes must rise",
        'trip.yaml:5: clips[0].prompts.1: a travelling prompt cannot hold a double quote ("), '
        "which ends it in AnimateDiff-Evolved's schedule; use ' instead",
        "trip.yaml:6: clips[0].prompts.40: frame 40 is past the clip's end: its 16 frames are "
        "0 to 15",
        "trip.yaml:6: clips[0].prompts.40: {nope} is not defined under `vars` (defined: style); "
        "write {{ and }} for literal braces",
        "trip.yaml:7: clips[0].prompts.sun: a keyframe is a frame number such as 0 or 8, got 'sun'",
        "trip.yaml:9: clips[1]: a clip needs a `prompt` (text-to-video, plus `image` for "
        "image-to-video) or a `video` to import",
        "trip.yaml:10: clips[2].prompt: {undefined} is not defined under `vars` (defined: "
        "style); write {{ and }} for literal braces",
    ]


def test_a_motion_lora_the_backend_lacks_is_named_with_what_it_has(
    plain_settings: Settings,
) -> None:
    text = "prompt: a\nmotionLora:\n  - {name: v2_lora_ZoomIn}\n  - {name: v2_lora_Spin}\n"
    assert check(plain_settings, text, INSTALLED).format().splitlines() == [
        "trip.yaml:4: motionLora[1].name: motion LoRA 'v2_lora_Spin' is not installed in "
        "ComfyUI; installed: v2_lora_PanLeft.ckpt, v2_lora_ZoomIn.ckpt"
    ]


# --- graphs -----------------------------------------------------------------------------------

SCHEDULE = (PromptKeyframe(0, "a bud"), PromptKeyframe(8, "a flower, opening"))


@pytest.mark.parametrize("mode", [GenerationMode.TEXT_TO_VIDEO, GenerationMode.IMAGE_TO_VIDEO])
@pytest.mark.parametrize("frames", [16, 32])
@pytest.mark.parametrize("loras", [0, 1, 3])
@pytest.mark.parametrize("travel", [False, True])
def test_travel_and_lora_graphs_fit_the_node_schemas(
    mode: GenerationMode, frames: int, loras: int, travel: bool
) -> None:
    spec = clip_spec(mode, frames, (512, 512), 7)
    spec = ClipSpec(
        **{
            **{f: getattr(spec, f) for f in spec.__slots__},
            "prompt_schedule": SCHEDULE if travel else (),
            "motion_loras": tuple(MotionLora("v2_lora_ZoomIn.ckpt", 0.5 + i) for i in range(loras)),
        }
    )
    graph: dict[str, Any] = (
        build_image_to_video(spec, "job", "ref.png")
        if mode is GenerationMode.IMAGE_TO_VIDEO
        else build_text_to_video(spec, "job")
    )
    assert check_graph(graph, OBJECT_INFO, check_models=True) == []
    assert schema_problems(graph) == []
    texts = [n["inputs"]["text"] for n in nodes_of(graph, "CLIPTextEncode")]
    if travel:
        scheduled = one(graph, "ADE_PromptScheduling")
        assert scheduled["prompts"] == '"0": "a bud",\n"8": "a flower, opening"'
        assert scheduled["max_length"] == frames
        assert texts == ["blurry"]
        assert graph[one(graph, "KSampler")["positive"][0]]["class_type"] == "ADE_PromptScheduling"
    else:
        assert not nodes_of(graph, "ADE_PromptScheduling")
        assert texts == ["a red fox running through snow", "blurry"]
    chain = nodes_of(graph, "ADE_AnimateDiffLoRALoader")
    assert [n["inputs"]["strength"] for n in chain] == [0.5 + i for i in range(loras)]
    applied = one(graph, "ADE_ApplyAnimateDiffModelSimple")
    if loras:
        assert graph[applied["motion_lora"][0]] is chain[-1]
        assert [("prev_motion_lora" in n["inputs"]) for n in chain] == [False] + [True] * (
            loras - 1
        )
    else:
        assert "motion_lora" not in applied


# --- against the double -------------------------------------------------------------------------


@pytest.mark.real_comfyui
def test_intake_refuses_a_motion_lora_the_backend_lacks(
    comfyui: ComfyUIServer, database: Database, tmp_path: Path
) -> None:
    settings = make_settings(
        tmp_path,
        database.engine.url.render_as_string(hide_password=False),
        comfyui={"urls": [comfyui.url]},
    )
    intake = Intake(settings, database, ModelCatalogue(settings.comfyui).installed)
    inbox = settings.inboxes[0].path
    text = "prompt: a\nmotionLora: {name: v2_lora_RollingClockwise, strength: 0.8}\n"
    assert drop(intake, inbox, text).outcome is Outcome.REJECTED
    assert (inbox / "rejected" / "trip.yaml.error.txt").read_text().splitlines() == [
        "trip.yaml:2: motionLora.name: motion LoRA 'v2_lora_RollingClockwise' is not installed "
        "in ComfyUI; installed: v2_lora_ZoomIn.ckpt"
    ]
    assert drop(intake, inbox, text.replace("RollingClockwise", "ZoomIn")).outcome is (
        Outcome.ACCEPTED
    )


@pytest.mark.real_comfyui
def test_a_prompt_travel_clip_with_a_motion_lora_reaches_the_outbox(
    comfyui: ComfyUIServer,
    database: Database,
    tmp_path: Path,
    running: Callable[[Settings], Services],
) -> None:
    settings = make_settings(
        tmp_path,
        database.engine.url.render_as_string(hide_password=False),
        comfyui={"urls": [comfyui.url]},
    )
    running(settings)
    (settings.inboxes[0].path / "bloom.yaml").write_text(TRAVEL, encoding="utf-8")
    outputs = wait_for(
        lambda: sorted(settings.outbox.glob("*_bloom_export_*.mp4")),
        timeout=within(comfyui, 90),
        what="the video",
    )
    info = probe(outputs[0])
    assert (info.width, info.height, info.frame_count) == (64, 64, 16)
    graph = graphs_sent(database)["clip1"]
    assert one(graph, "ADE_PromptScheduling")["prompts"] == (
        '"0": "a bud, watercolor, soft light",\n'
        '"8": "a flower opening, watercolor, soft light",\n'
        '"15": "a full bloom"'
    )
    assert one(graph, "ADE_AnimateDiffLoRALoader") == {
        "name": "v2_lora_ZoomIn.ckpt",
        "strength": 0.8,
    }
