"""The node schemas of ComfyUI (``/object_info``), and an offline check of a built graph.

``check_graph`` is the offline half of ComfyUI's own validation: it reads the node schemas of
``object_info`` and reports, in words, what the server would reject with a 400
(docs/comfyui.md#submitting-a-prompt). Model files can only be checked against a reachable
backend's ``object_info``, so they are skipped unless asked for; uploaded files are checked by
ComfyUI itself.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from functools import cache
from importlib import resources
from typing import Any

from vidgen.specs import ModelKind
from workflows.graph import Link, is_link

# The loader (node, input) whose choices list each kind of model file on a backend.
LOADERS: dict[ModelKind, tuple[str, str]] = {
    ModelKind.CHECKPOINT: ("CheckpointLoaderSimple", "ckpt_name"),
    ModelKind.VAE: ("VAELoader", "vae_name"),
    ModelKind.MOTION_MODULE: ("ADE_LoadAnimateDiffModel", "model_name"),
    ModelKind.IP_ADAPTER: ("IPAdapterModelLoader", "ipadapter_file"),
    ModelKind.CLIP_VISION: ("CLIPVisionLoader", "clip_name"),
    ModelKind.UPSCALE: ("UpscaleModelLoader", "model_name"),
    # models/animatediff_motion_lora
    ModelKind.MOTION_LORA: ("ADE_AnimateDiffLoRALoader", "name"),
    # RIFE VFI lists a fixed set and downloads a missing file on first use, so its list is the
    # same everywhere (docs/comfyui.md#nodes-vidgen-builds-with).
    ModelKind.RIFE: ("RIFE VFI", "ckpt_name"),
}
# Inputs whose choices are model files on the backend: the bundled object_info lists the files of
# the capture machine, not the user's, so these are checked only against a live backend.
MODEL_CHOICE_INPUTS: frozenset[tuple[str, str]] = frozenset(
    loader for kind, loader in LOADERS.items() if kind is not ModelKind.RIFE
)
# Uploaded inputs are never checked against their lists: these nodes validate the file themselves
# and accept any existing one, e.g. "sub/name.png" from an upload into a subfolder
# (docs/comfyui.md#submitting-a-prompt).
UPLOAD_INPUTS: frozenset[tuple[str, str]] = frozenset(
    {("LoadImage", "image"), ("VHS_LoadVideo", "video")}
)


@cache
def bundled_object_info() -> dict[str, Any]:
    """The node schemas shipped with vidgen (``workflows/data/object_info.json``)."""
    text = resources.files("workflows").joinpath("data/object_info.json").read_text("utf-8")
    info: dict[str, Any] = json.loads(text)
    return info


def input_spec(object_info: Mapping[str, Any], class_type: str, name: str) -> list[Any] | None:
    """The schema of one input (required or optional), or None when the node has no such input."""
    inputs = object_info.get(class_type, {}).get("input", {})
    for section in ("required", "optional"):
        spec = inputs.get(section, {}).get(name)
        if isinstance(spec, list) and spec:
            return spec
    return None


def choices_of(spec: list[Any]) -> list[Any] | None:
    """The allowed values of a combo input, in either of its forms, or None if it is no combo.

    docs/comfyui.md#endpoints: the classic combo is ``[[choices...], {...}]``; V3 core nodes such as
    UpscaleModelLoader write ``["COMBO", {"options": [...]}]``.
    """
    if isinstance(spec[0], list):
        return spec[0]
    if spec[0] == "COMBO" and len(spec) > 1 and isinstance(spec[1], dict):
        options = spec[1].get("options")
        return options if isinstance(options, list) else []
    return None


def check_graph(
    graph: Mapping[str, Any], object_info: Mapping[str, Any], *, check_models: bool = False
) -> list[str]:
    """Every problem ComfyUI would reject this graph for, in words; ``[]`` when it would pass.

    ``check_models`` also checks model files against the loaders' choice lists, which is right
    only for a reachable backend's ``object_info``.
    """
    if not graph:
        return ["the graph has no nodes"]
    problems: list[str] = []
    has_output = False
    for node_id, node in graph.items():
        class_type = node.get("class_type") if isinstance(node, dict) else None
        info = object_info.get(class_type) if isinstance(class_type, str) else None
        if not isinstance(info, dict):
            problems.append(f"node {node_id}: unknown node type {class_type!r}")
            continue
        has_output = has_output or bool(info.get("output_node"))
        problems.extend(_check_node(graph, object_info, node_id, node, check_models))
    if not has_output:
        problems.append("the graph has no output node, so ComfyUI would run nothing")
    return problems


def _check_node(
    graph: Mapping[str, Any],
    object_info: Mapping[str, Any],
    node_id: str,
    node: Mapping[str, Any],
    check_models: bool,
) -> list[str]:
    class_type: str = node["class_type"]
    inputs: Mapping[str, Any] = node.get("inputs", {})
    where = f"node {node_id} ({class_type})"
    required = object_info[class_type].get("input", {}).get("required", {})
    problems = [
        f"{where}: required input {name!r} is missing" for name in required if name not in inputs
    ]
    for name, value in inputs.items():
        spec = input_spec(object_info, class_type, name)
        if spec is None:
            continue  # ComfyUI ignores undeclared inputs (docs/comfyui.md#submitting-a-prompt)
        if is_link(value):
            problem = _check_link(graph, object_info, value, spec)
        elif (class_type, name) in UPLOAD_INPUTS:
            problem = None if isinstance(value, str) else f"expects a file name, got {value!r}"
        elif (class_type, name) in MODEL_CHOICE_INPUTS and not check_models:
            problem = None
        else:
            problem = _check_value(value, spec)
        if problem:
            problems.append(f"{where}, input {name!r}: {problem}")
    return problems


def _check_link(
    graph: Mapping[str, Any], object_info: Mapping[str, Any], value: Link, spec: list[Any]
) -> str | None:
    source_id, index = str(value[0]), int(value[1])
    source = graph.get(source_id)
    if not isinstance(source, dict):
        return f"linked to node {source_id}, which is not in the graph"
    outputs = object_info.get(str(source.get("class_type")), {}).get("output", [])
    if not 0 <= index < len(outputs):
        return f"linked to output {index} of node {source_id}, which has {len(outputs)} outputs"
    expected = "COMBO" if choices_of(spec) is not None else spec[0]
    received = outputs[index]
    if not _types_match(str(received), str(expected)):
        return f"receives {received} from node {source_id} but expects {expected}"
    return None


def _types_match(received: str, expected: str) -> bool:
    # ComfyUI accepts "*" on either side and comma-separated unions of types.
    if "*" in (received, expected):
        return True
    return set(received.split(",")) <= set(expected.split(","))


def _check_value(value: Any, spec: list[Any]) -> str | None:
    choices = choices_of(spec)
    if choices is not None:
        return None if value in choices else f"{value!r} is not one of {_shorten(choices)}"
    kind = spec[0]
    options = spec[1] if len(spec) > 1 and isinstance(spec[1], dict) else {}
    if kind in ("INT", "FLOAT"):
        return _check_number(value, kind, options)
    if kind == "STRING":
        return None if isinstance(value, str) else f"expects text, got {value!r}"
    if kind == "BOOLEAN":
        return None if isinstance(value, bool) else f"expects true or false, got {value!r}"
    return f"expects a link to a {kind} output, got the value {value!r}"


def _check_number(value: Any, kind: str, options: Mapping[str, Any]) -> str | None:
    wanted = (int,) if kind == "INT" else (int, float)
    if isinstance(value, bool) or not isinstance(value, wanted):
        return f"expects {'a whole number' if kind == 'INT' else 'a number'}, got {value!r}"
    low, high = options.get("min"), options.get("max")
    if low is not None and value < low:
        return f"{value} is below the minimum {low}"
    if high is not None and value > high:
        return f"{value} is above the maximum {high}"
    return None


def _shorten(choices: list[Any], limit: int = 12) -> str:
    shown = ", ".join(repr(c) for c in choices[:limit])
    more = f" and {len(choices) - limit} more" if len(choices) > limit else ""
    return f"[{shown}{more}]"
