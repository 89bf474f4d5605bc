"""Every graph vidgen can build validates against the bundled node schemas, and says what we meant.

The schema check here is written independently of ``workflows.graph.check_graph`` (and of the
ComfyUI double's validator): it follows ComfyUI's own rules as docs/comfyui.md#submitting-a-prompt
describes them, including the file choices, which the bundled object_info fills with the capture
machine's placeholder files and uploads (``ref.png``, ``clip.mp4``), so the graphs below use those
names. Prompt travel and motion LoRAs are combined with both modes in tests/test_prompt_travel.py.
"""

from __future__ import annotations

import itertools
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from stages.comfyui_steps import (
    ComfyUIStep,
    StepPrompt,
    interpolate_step,
    step_prompts,
    upscale_step,
)
from stages.shapes import VideoShape
from vidgen.specs import (
    ClipSpec,
    Engine,
    GenerationMode,
    InterpolateSpec,
    ModelKind,
    UpscaleSpec,
    resolve_model_name,
)
from workflows import (
    SEED_MAX,
    build_image_to_video,
    build_interpolate,
    build_text_to_video,
    build_upscale,
    check_graph,
    filename_prefix,
    fold_seed,
    installed_models_from_object_info,
    interpolated_frame_count,
    plan_chunks,
    plan_interpolation,
)

OBJECT_INFO: dict[str, Any] = json.loads(
    (Path(__file__).parent.parent / "workflows" / "data" / "object_info.json").read_text("utf-8")
)
# The capture machine had no motion LoRA; the graphs below name the one the double offers.
OBJECT_INFO["ADE_AnimateDiffLoRALoader"]["input"]["required"]["name"][0] = ["v2_lora_ZoomIn.ckpt"]
JOB_ID = "3f0c2a9e-5b1d-4c1e-9a57-0d2f6c1b7e42"
FRAMES = [8, 16, 17, 32, 128]
SIZES = [(512, 512), (768, 512), (512, 768), (256, 256)]
SEEDS = [0, 2**64 - 1]
UPSCALE_MODELS = ["RealESRGAN_x4plus.pth", "RealESRGAN_x4plus_anime_6B.pth"]
RIFE_MODELS = ["rife47", "rife49", "rife417", "rife426", "rife47.pth"]
REFERENCE = "ref.png"
VIDEO = "clip.mp4"


# --- an independent validator, after docs/comfyui.md#submitting-a-prompt --------------------------


def schema_problems(graph: dict[str, Any]) -> list[str]:
    """What ComfyUI's /prompt validation would object to, following
    docs/comfyui.md#submitting-a-prompt case by case."""
    problems: list[str] = []
    outputs = [n for n in graph.values() if OBJECT_INFO.get(n["class_type"], {}).get("output_node")]
    if not outputs:
        problems.append("(g) no output node")
    for node_id, node in graph.items():
        assert isinstance(node_id, str), node_id
        assert node_id.isdigit(), node_id
        schema = OBJECT_INFO.get(node["class_type"])
        if schema is None:
            problems.append(f"(a) {node_id}: unknown class_type {node['class_type']}")
            continue
        declared = {**schema["input"].get("optional", {}), **schema["input"]["required"]}
        for name in schema["input"]["required"]:
            if name not in node["inputs"]:
                problems.append(f"(b) {node_id}.{name}: required_input_missing")
        for name, value in node["inputs"].items():
            if name in declared:
                problems += [
                    f"{node_id}.{name}: {p}" for p in value_problems(graph, value, declared[name])
                ]
    return problems


def value_problems(graph: dict[str, Any], value: Any, spec: list[Any]) -> Iterator[str]:
    head = spec[0]
    options = spec[1] if len(spec) > 1 and isinstance(spec[1], dict) else {}
    combo = head if isinstance(head, list) else options.get("options") if head == "COMBO" else None
    if isinstance(value, list):
        yield from link_problems(graph, value, "COMBO" if combo is not None else head)
    elif combo is not None:
        if value not in combo:
            yield f"(d) value_not_in_list {value!r}"
    elif head in LITERAL_TYPES:
        yield from literal_problems(value, head, options)
    else:
        yield f"a {head} input needs a link, got {value!r}"


LITERAL_TYPES: dict[str, tuple[type, ...]] = {
    "INT": (int,),
    "FLOAT": (int, float),
    "BOOLEAN": (bool,),
    "STRING": (str,),
}


def link_problems(graph: dict[str, Any], value: list[Any], wanted: str) -> Iterator[str]:
    source_id, index = value
    if source_id not in graph:
        yield "(e) link to a node that does not exist"
        return
    produced = OBJECT_INFO[graph[source_id]["class_type"]]["output"]
    if index >= len(produced):
        yield "(e2) output index out of range"
    elif produced[index] != wanted:
        yield f"(f) return_type_mismatch {produced[index]} -> {wanted}"


def literal_problems(value: Any, head: str, options: dict[str, Any]) -> Iterator[str]:
    # type(), not isinstance(): True is no INT for us, though Python says it is an int.
    if type(value) not in LITERAL_TYPES[head]:
        yield f"(i) not a {head}: {value!r}"
        return
    if "min" in options and value < options["min"]:
        yield f"(c2) value_smaller_than_min {value}"
    if "max" in options and value > options["max"]:
        yield f"(c) value_bigger_than_max {value}"


def nodes_of(graph: dict[str, Any], class_type: str) -> list[dict[str, Any]]:
    return [node for node in graph.values() if node["class_type"] == class_type]


def one(graph: dict[str, Any], class_type: str) -> dict[str, Any]:
    found = nodes_of(graph, class_type)
    assert len(found) == 1, f"{class_type}: {len(found)} nodes"
    return found[0]["inputs"]  # type: ignore[no-any-return]


def source_type(graph: dict[str, Any], value: list[Any]) -> str:
    return graph[value[0]]["class_type"]  # type: ignore[no-any-return]


def assert_all_nodes_feed_the_output(graph: dict[str, Any]) -> None:
    """No node is left dangling: each one is upstream of the single VideoCombine."""
    (output_id,) = [i for i, n in graph.items() if n["class_type"] == "VHS_VideoCombine"]
    seen, todo = set(), [output_id]
    while todo:
        node_id = todo.pop()
        seen.add(node_id)
        todo += [v[0] for v in graph[node_id]["inputs"].values() if isinstance(v, list)]
    assert seen == set(graph)


def assert_video_combine(graph: dict[str, Any], frame_rate: float, label: str) -> None:
    combine = one(graph, "VHS_VideoCombine")
    assert combine["frame_rate"] == frame_rate
    assert combine["format"] == "video/h264-mp4"
    assert combine["pix_fmt"] == "yuv420p"
    assert combine["filename_prefix"] == f"vidgen/{JOB_ID}/{label}"
    assert combine["save_output"] is True


# --- text-to-video and image-to-video ------------------------------------------------------------


def clip_spec(mode: GenerationMode, frames: int, size: tuple[int, int], seed: int) -> ClipSpec:
    return ClipSpec(
        clip_name="clip1",
        mode=mode,
        prompt="a red fox running through snow",
        negative_prompt="blurry",
        seed=seed,
        steps=20,
        cfg=7.5,
        frames=frames,
        frame_rate=8,
        width=size[0],
        height=size[1],
        checkpoint="realisticVisionV51_v51VAE.safetensors",
        vae="vae-ft-mse-840000-ema-pruned.safetensors",
        motion_module="mm_sd_v15_v2.ckpt",
        ip_adapter="ip-adapter-plus_sd15.safetensors",
        clip_vision="CLIP-ViT-H-14-laion2B-s32B-b79K.safetensors",
        ip_adapter_weight=0.8,
    )


def build_clip(spec: ClipSpec) -> dict[str, Any]:
    if spec.mode is GenerationMode.IMAGE_TO_VIDEO:
        return build_image_to_video(spec, JOB_ID, REFERENCE)
    return build_text_to_video(spec, JOB_ID)


CLIP_CASES = list(
    itertools.product(
        [GenerationMode.TEXT_TO_VIDEO, GenerationMode.IMAGE_TO_VIDEO], FRAMES, SIZES, SEEDS
    )
)


@pytest.mark.parametrize(("mode", "frames", "size", "seed"), CLIP_CASES)
def test_clip_graph_validates_and_matches_the_spec(
    mode: GenerationMode, frames: int, size: tuple[int, int], seed: int
) -> None:
    spec = clip_spec(mode, frames, size, seed)
    graph = build_clip(spec)

    assert schema_problems(graph) == []
    assert check_graph(graph, OBJECT_INFO, check_models=True) == []
    assert_all_nodes_feed_the_output(graph)
    assert one(graph, "EmptyLatentImage") == {
        "width": size[0],
        "height": size[1],
        "batch_size": frames,
    }
    sampler = one(graph, "KSampler")
    assert (sampler["seed"], sampler["steps"], sampler["cfg"]) == (seed, 20, 7.5)
    assert (sampler["sampler_name"], sampler["scheduler"]) == ("euler_ancestral", "normal")
    assert source_type(graph, sampler["model"]) == "ADE_UseEvolvedSampling"
    context = one(graph, "ADE_StandardUniformContextOptions")
    assert (context["context_length"], context["context_overlap"]) == (16, 4)
    decoder = "VAEDecodeTiled" if frames > 16 else "VAEDecode"
    assert source_type(graph, one(graph, decoder)["vae"]) == "VAELoader"
    assert not nodes_of(graph, "VAEDecode" if frames > 16 else "VAEDecodeTiled")
    assert not nodes_of(graph, "FreeU_V2")
    assert one(graph, "CLIPSetLastLayer")["stop_at_clip_layer"] == -2
    assert sorted(n["text"] for n in (x["inputs"] for x in nodes_of(graph, "CLIPTextEncode"))) == [
        "a red fox running through snow",
        "blurry",
    ]
    assert_video_combine(graph, 8.0, "clip")


@pytest.mark.parametrize("frames", FRAMES)
def test_image_to_video_uses_explicit_ipadapter_loaders(frames: int) -> None:
    graph = build_clip(clip_spec(GenerationMode.IMAGE_TO_VIDEO, frames, (512, 512), 7))

    ipadapter = one(graph, "IPAdapterAdvanced")
    assert source_type(graph, ipadapter["clip_vision"]) == "CLIPVisionLoader"
    assert source_type(graph, ipadapter["ipadapter"]) == "IPAdapterModelLoader"
    assert source_type(graph, ipadapter["image"]) == "LoadImage"
    assert source_type(graph, ipadapter["model"]) == "CheckpointLoaderSimple"
    assert ipadapter["weight"] == 0.8
    assert one(graph, "LoadImage")["image"] == REFERENCE
    assert source_type(graph, one(graph, "ADE_UseEvolvedSampling")["model"]) == "IPAdapterAdvanced"
    assert not nodes_of(graph, "IPAdapterUnifiedLoader")


def test_text_to_video_without_a_vae_uses_the_checkpoints_own() -> None:
    spec = clip_spec(GenerationMode.TEXT_TO_VIDEO, 16, (512, 512), 1)
    graph = build_text_to_video(ClipSpec(**{**_fields(spec), "vae": ""}), JOB_ID)

    assert schema_problems(graph) == []
    assert not nodes_of(graph, "VAELoader")
    assert one(graph, "VAEDecode")["vae"][1] == 2  # CheckpointLoaderSimple's VAE output


def _fields(spec: ClipSpec) -> dict[str, Any]:
    return {name: getattr(spec, name) for name in spec.__slots__}


def test_seed_range_matches_ksampler_schema() -> None:
    assert OBJECT_INFO["KSampler"]["input"]["required"]["seed"][1]["max"] == SEED_MAX == 2**64 - 1
    assert fold_seed(0) == 0
    assert fold_seed(2**64 - 1) == 2**64 - 1
    assert fold_seed(2**64) == 0
    assert fold_seed(2**64 + 5) == 5
    assert fold_seed(-1) == SEED_MAX


def test_seed_above_the_range_is_folded_into_a_valid_graph() -> None:
    spec = clip_spec(GenerationMode.TEXT_TO_VIDEO, 16, (512, 512), 0)
    graph = build_text_to_video(ClipSpec(**{**_fields(spec), "seed": 2**64 + 41}), JOB_ID)

    assert one(graph, "KSampler")["seed"] == 41
    assert schema_problems(graph) == []


def test_output_prefix_refuses_a_job_id_that_is_a_path() -> None:
    assert filename_prefix("job-1", "clip") == "vidgen/job-1/clip"
    with pytest.raises(ValueError, match="plain tokens"):
        filename_prefix("../escape", "clip")


# --- upscale -------------------------------------------------------------------------------------

UPSCALE_CASES = list(itertools.product([2, 4], UPSCALE_MODELS, [8, 16, 17, 128], [16, 5]))


@pytest.mark.parametrize(("scale", "model", "frame_count", "chunk_frames"), UPSCALE_CASES)
def test_upscale_chunks_validate_and_cover_every_frame(
    scale: int, model: str, frame_count: int, chunk_frames: int
) -> None:
    spec = UpscaleSpec(scale=scale, engine=Engine.COMFYUI, model=model)
    chunks = plan_chunks(frame_count, chunk_frames)
    covered: list[int] = []
    for chunk in chunks:
        graph = build_upscale(VIDEO, spec, chunk, 8.0, JOB_ID)

        assert schema_problems(graph) == []
        assert check_graph(graph, OBJECT_INFO, check_models=True) == []
        assert_all_nodes_feed_the_output(graph)
        load = one(graph, "VHS_LoadVideo")
        assert load["video"] == VIDEO
        assert 1 <= load["frame_load_cap"] <= chunk_frames  # 0 would mean "all frames"
        covered += range(
            load["skip_first_frames"], load["skip_first_frames"] + load["frame_load_cap"]
        )
        assert one(graph, "UpscaleModelLoader")["model_name"] == model
        scaled = nodes_of(graph, "ImageScaleBy")
        assert [n["inputs"]["scale_by"] for n in scaled] == ([0.5] if scale == 2 else [])
        assert_video_combine(graph, 8.0, f"upscale_{chunk.index:04d}")
    assert covered == list(range(frame_count))
    assert [c.index for c in chunks] == list(range(len(chunks)))


def test_plan_chunks_refuses_empty_input() -> None:
    with pytest.raises(ValueError, match="at least one frame"):
        plan_chunks(0, 16)


def test_upscale_refuses_a_scale_the_model_cannot_give() -> None:
    chunk = plan_chunks(8, 16)[0]
    with pytest.raises(ValueError, match="upscale factor"):
        build_upscale(VIDEO, UpscaleSpec(scale=8), chunk, 8.0, JOB_ID)


# --- interpolate ---------------------------------------------------------------------------------

INTERPOLATE_CASES = list(itertools.product([(24, 3), (30, 4), (60, 8)], RIFE_MODELS))


@pytest.mark.parametrize(("target", "model"), INTERPOLATE_CASES)
def test_interpolate_graph_validates_with_every_rife_input(
    target: tuple[int, int], model: str
) -> None:
    fps, multiplier = target
    graph = build_interpolate(
        VIDEO, InterpolateSpec(fps=fps, engine=Engine.COMFYUI, model=model), 8, JOB_ID
    )

    assert schema_problems(graph) == []
    assert check_graph(graph, OBJECT_INFO, check_models=True) == []
    assert_all_nodes_feed_the_output(graph)
    rife = one(graph, "RIFE VFI")
    assert rife["multiplier"] == multiplier
    assert rife["ckpt_name"] == model.removesuffix(".pth") + ".pth"
    assert {"dtype", "torch_compile", "batch_size"} <= set(rife)
    assert one(graph, "VHS_LoadVideo")["frame_load_cap"] == 0
    assert_video_combine(graph, 8.0 * multiplier, "interpolate")
    plan = plan_interpolation(8, fps)
    assert (plan.multiplier, plan.output_fps) == (multiplier, 8.0 * multiplier)


def test_rife_frame_count_is_n_minus_one_times_multiplier_plus_one() -> None:
    assert interpolated_frame_count(16, 3) == 46
    assert interpolated_frame_count(8, 3) == 22
    assert interpolated_frame_count(8, 1) == 8


def test_interpolation_multiplier_is_exact_for_whole_ratios() -> None:
    assert plan_interpolation(8, 8).multiplier == 1
    assert plan_interpolation(8, 4).multiplier == 1
    assert plan_interpolation(12, 24).multiplier == 2
    assert plan_interpolation(29.97, 60).multiplier == 3
    with pytest.raises(ValueError, match="positive"):
        plan_interpolation(0, 24)


# --- the offline check in workflows.graph --------------------------------------------------------


def good_graph() -> dict[str, Any]:
    return build_interpolate(VIDEO, InterpolateSpec(fps=24, model="rife47.pth"), 8, JOB_ID)


def test_check_graph_names_each_problem_in_words() -> None:
    graph = good_graph()
    del graph["2"]["inputs"]["dtype"]
    graph["2"]["inputs"]["multiplier"] = 0
    graph["2"]["inputs"]["scale_factor"] = 3.0
    graph["3"]["inputs"]["images"] = ["1", 1]
    graph["4"] = {"class_type": "NoSuchNode", "inputs": {}}

    problems = check_graph(graph, OBJECT_INFO)

    assert "node 2 (RIFE VFI): required input 'dtype' is missing" in problems
    assert "node 2 (RIFE VFI), input 'multiplier': 0 is below the minimum 1" in problems
    assert any(
        p.startswith("node 2 (RIFE VFI), input 'scale_factor': 3.0 is not one of") for p in problems
    )
    assert (
        "node 3 (VHS_VideoCombine), input 'images': receives INT from node 1 but expects IMAGE"
        in problems
    )
    assert "node 4: unknown node type 'NoSuchNode'" in problems
    assert len(problems) == 5
    assert len(schema_problems(graph)) == 5


def test_check_graph_reports_links_to_missing_nodes_and_outputs() -> None:
    graph = good_graph()
    graph["2"]["inputs"]["frames"] = ["9", 0]
    graph["3"]["inputs"]["images"] = ["2", 3]
    del graph["2"]["inputs"]["batch_size"]
    graph["2"]["inputs"]["fast_mode"] = "yes"

    assert check_graph(graph, OBJECT_INFO) == [
        "node 2 (RIFE VFI): required input 'batch_size' is missing",
        "node 2 (RIFE VFI), input 'frames': linked to node 9, which is not in the graph",
        "node 2 (RIFE VFI), input 'fast_mode': expects true or false, got 'yes'",
        "node 3 (VHS_VideoCombine), input 'images': linked to output 3 of node 2, "
        "which has 1 outputs",
    ]


def test_check_graph_without_output_node_or_nodes() -> None:
    graph = good_graph()
    del graph["3"]
    assert check_graph(graph, OBJECT_INFO) == [
        "the graph has no output node, so ComfyUI would run nothing"
    ]
    assert check_graph({}, OBJECT_INFO) == ["the graph has no nodes"]


def test_check_graph_leaves_model_files_to_a_live_backend() -> None:
    spec = clip_spec(GenerationMode.IMAGE_TO_VIDEO, 16, (512, 512), 1)
    graph = build_image_to_video(
        ClipSpec(**{**_fields(spec), "checkpoint": "mine.safetensors"}), JOB_ID, "refs/other.png"
    )
    assert check_graph(graph, OBJECT_INFO) == []
    # An uploaded file outside the list is fine: LoadImage checks that it exists
    # (docs/comfyui.md#submitting-a-prompt).
    assert check_graph(graph, OBJECT_INFO, check_models=True) == [
        "node 1 (CheckpointLoaderSimple), input 'ckpt_name': 'mine.safetensors' is not one of "
        "['realisticVisionV51_v51VAE.safetensors', 'v1-5-pruned-emaonly.safetensors']",
    ]


def test_check_graph_reads_new_style_combo() -> None:
    graph = build_upscale(
        VIDEO, UpscaleSpec(scale=4, model="nope.pth"), plan_chunks(8, 8)[0], 8, JOB_ID
    )
    (problem,) = check_graph(graph, OBJECT_INFO, check_models=True)
    assert problem.startswith(
        "node 2 (UpscaleModelLoader), input 'model_name': 'nope.pth' is not one of"
    )


# --- models --------------------------------------------------------------------------------------

INSTALLED = installed_models_from_object_info(OBJECT_INFO)


def test_installed_models_read_every_loader_incl_new_style_combo() -> None:
    names = INSTALLED.names
    assert names(ModelKind.UPSCALE) == (
        "RealESRGAN_x4plus.pth",
        "RealESRGAN_x4plus_anime_6B.pth",
    )
    assert names(ModelKind.CHECKPOINT) == (
        "realisticVisionV51_v51VAE.safetensors",
        "v1-5-pruned-emaonly.safetensors",
    )
    assert names(ModelKind.VAE) == ("vae-ft-mse-840000-ema-pruned.safetensors",)
    assert names(ModelKind.MOTION_MODULE) == ("mm_sd_v15_v2.ckpt",)
    assert names(ModelKind.CLIP_VISION) == ("CLIP-ViT-H-14-laion2B-s32B-b79K.safetensors",)
    assert "ip-adapter-plus_sd15.safetensors" in names(ModelKind.IP_ADAPTER)
    assert "rife47.pth" in names(ModelKind.RIFE)
    assert all(not installed_models_from_object_info({}).names(kind) for kind in ModelKind)


def test_resolve_model_name_completes_a_missing_extension() -> None:
    choices = ["rife47.pth", "rife49.pth", "sudo_rife4_269.662_testV1_scale1.pth"]
    assert resolve_model_name("rife47", choices) == "rife47.pth"
    assert resolve_model_name("rife47.pth", choices) == "rife47.pth"
    assert resolve_model_name("sudo_rife4_269.662_testV1_scale1", choices) == choices[2]
    assert resolve_model_name("rife46", choices) is None
    assert resolve_model_name("model", ["model.ckpt", "model.safetensors"]) is None  # ambiguous


@pytest.mark.parametrize("stage", ["upscale", "interpolate"])
def test_comfyui_steps_write_lossless_h264_between_stages_unless_too_big_to_upload(
    stage: str, tmp_path: Path
) -> None:
    def step(width: int, seconds: float) -> ComfyUIStep:
        shape = VideoShape(width, width, 8.0, seconds)
        output = tmp_path / f"02_comfyui_{stage}.mp4"
        if stage == "upscale":
            return upscale_step("RealESRGAN_x4plus.pth", 2, tmp_path / "in.mp4", shape, output, 16)
        return interpolate_step("rife47.pth", 24.0, tmp_path / "in.mp4", shape, output)

    def combine(prompt: StepPrompt) -> tuple[str, str, int]:
        node = next(n for n in prompt.graph.values() if n["class_type"] == "VHS_VideoCombine")
        return node["inputs"]["format"], node["inputs"]["pix_fmt"], node["inputs"]["crf"]

    small = step(256, 2.0)
    prompts = step_prompts(small, "job1", "in.mp4")
    assert small.lossless
    assert {combine(p) for p in prompts} == {("video/h264-mp4", "yuv420p", 0)}
    assert all(check_graph(p.graph, OBJECT_INFO) == [] for p in prompts)
    # 1024² frames for 6 s would pass ComfyUI's 100 MB upload limit: they stay at crf 19
    big = step(512 if stage == "upscale" else 1024, 6.0)
    assert not big.lossless
    assert {combine(p) for p in step_prompts(big, "job1", "in.mp4")} == {
        ("video/h264-mp4", "yuv420p", 19)
    }
