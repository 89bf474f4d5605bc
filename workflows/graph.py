"""Shared pieces of the graph builders, and an offline structure check of a built graph.

A graph is ComfyUI's API format: ``{node_id: {"class_type": str, "inputs": {name: value | link}}}``
with string node ids and links written ``[source_node_id, output_index]`` (``comfyui/API.md`` §3).
The builders in this package are pure functions; they meet here to allocate node ids, to add the one
VideoCombine node every graph ends in, and to name outputs after the job.

``check_graph`` is the offline half of ComfyUI's own validation: it reads the node schemas of
``object_info`` and reports, in words, what the server would reject with a 400. Model files can
only be checked against a reachable backend's ``object_info``, so they are skipped unless asked
for; uploaded files are checked by ComfyUI itself.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from functools import cache
from importlib import resources
from typing import Any

Graph = dict[str, dict[str, Any]]
Link = list[str | int]

VIDEO_FORMAT = "video/h264-mp4"
PIXEL_FORMAT = "yuv420p"
CRF = 19

# Inputs whose choices are model files on the backend: the bundled object_info lists the files of
# the capture machine, not the user's, so these are checked only against a live backend.
MODEL_CHOICE_INPUTS: frozenset[tuple[str, str]] = frozenset(
    {
        ("CheckpointLoaderSimple", "ckpt_name"),
        ("VAELoader", "vae_name"),
        ("ADE_LoadAnimateDiffModel", "model_name"),
        ("IPAdapterModelLoader", "ipadapter_file"),
        ("CLIPVisionLoader", "clip_name"),
        ("UpscaleModelLoader", "model_name"),
    }
)
# Uploaded inputs are never checked against their lists: these nodes validate the file themselves
# and accept any existing one, e.g. "sub/name.png" from an upload into a subfolder (API.md §3.1).
UPLOAD_INPUTS: frozenset[tuple[str, str]] = frozenset(
    {("LoadImage", "image"), ("VHS_LoadVideo", "video")}
)

_JOB_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]*$")


class GraphBuilder:
    """Collects nodes in the order they are added and numbers them "1", "2", ..."""

    def __init__(self) -> None:
        self._nodes: Graph = {}

    def add(self, class_type: str, inputs: Mapping[str, Any]) -> str:
        """Add a node and return its id."""
        node_id = str(len(self._nodes) + 1)
        self._nodes[node_id] = {"class_type": class_type, "inputs": dict(inputs)}
        return node_id

    def build(self) -> Graph:
        """The graph so far, as a fresh dict the caller may keep or change."""
        return {
            node_id: {**node, "inputs": dict(node["inputs"])}
            for node_id, node in self._nodes.items()
        }


def link(node_id: str, output_index: int = 0) -> Link:
    """A link to output ``output_index`` of node ``node_id``."""
    return [node_id, output_index]


def is_link(value: Any) -> bool:
    """Whether an input value is a link rather than a literal."""
    return (
        isinstance(value, list)
        and len(value) == 2
        and isinstance(value[0], str)
        and isinstance(value[1], int)
        and not isinstance(value[1], bool)
    )


def filename_prefix(job_id: str, label: str) -> str:
    """``vidgen/{job_id}/{label}``: the output subfolder and file stem of one job's prompt.

    Trap (API.md §5 "Output naming", DESIGN.md "Known traps"): ComfyUI's file counter is
    1 + the highest existing counter for a prefix, so several processes writing the same prefix
    can collide; a prefix that carries the job id is ours alone.

    Raises:
        ValueError: the job id is not a plain token (it becomes part of a path on the backend).
    """
    if not _JOB_ID.match(job_id) or not _JOB_ID.match(label):
        raise ValueError(f"job id and label must be plain tokens, got {job_id!r} and {label!r}")
    return f"vidgen/{job_id}/{label}"


def add_video_combine(builder: GraphBuilder, images: Link, frame_rate: float, prefix: str) -> str:
    """VHS_VideoCombine writing an h264 mp4 (yuv420p) at ``frame_rate`` into ComfyUI's output."""
    return builder.add(
        "VHS_VideoCombine",
        {
            "images": images,
            "frame_rate": frame_rate,
            "loop_count": 0,
            "filename_prefix": prefix,
            "format": VIDEO_FORMAT,
            # The format's own widgets are flat inputs; sent explicitly so the result does not
            # depend on VHS's defaults (API.md §8, VHS_VideoCombine).
            "pix_fmt": PIXEL_FORMAT,
            "crf": CRF,
            "save_metadata": True,
            "trim_to_audio": False,
            "pingpong": False,
            "save_output": True,
        },
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

    API.md §7: the classic combo is ``[[choices...], {...}]``; V3 core nodes such as
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
            continue  # ComfyUI ignores undeclared inputs (API.md §3.1, "Quirks")
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
