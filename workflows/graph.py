"""Shared pieces of the graph builders.

A graph is ComfyUI's API format: ``{node_id: {"class_type": str, "inputs": {name: value | link}}}``
with string node ids and links written ``[source_node_id, output_index]``
(docs/comfyui.md#submitting-a-prompt). The builders in this package are pure functions; they meet
here to allocate node ids, to add the one VideoCombine node every graph ends in, and to name
outputs after the job.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

Graph = dict[str, dict[str, Any]]
Link = list[str | int]

VIDEO_FORMAT = "video/h264-mp4"
PIXEL_FORMAT = "yuv420p"
CRF = 19
# Between ComfyUI stages: x264 at crf 0 is lossless once the frames are yuv420p and costs no time
# against crf 19 on the real server, where FFV1 (lossless RGB) cost a third of a second more per
# 16 frames of 512² and 30x the bytes (docs/comfyui.md#nodes-vidgen-builds-with).
LOSSLESS_CRF = 0
_DELIVERY_WIDGETS = {"format": VIDEO_FORMAT, "pix_fmt": PIXEL_FORMAT, "crf": CRF}
_LOSSLESS_WIDGETS = {"format": VIDEO_FORMAT, "pix_fmt": PIXEL_FORMAT, "crf": LOSSLESS_CRF}

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

    Trap (docs/comfyui.md#traps): ComfyUI's file counter is
    1 + the highest existing counter for a prefix, so several processes writing the same prefix
    can collide; a prefix that carries the job id is ours alone.

    Raises:
        ValueError: the job id is not a plain token (it becomes part of a path on the backend).
    """
    if not _JOB_ID.match(job_id) or not _JOB_ID.match(label):
        raise ValueError(f"job id and label must be plain tokens, got {job_id!r} and {label!r}")
    return f"vidgen/{job_id}/{label}"


def add_video_combine(
    builder: GraphBuilder, images: Link, frame_rate: float, prefix: str, *, lossless: bool = False
) -> str:
    """VHS_VideoCombine writing an h264 mp4 (yuv420p) at ``frame_rate`` into ComfyUI's output,
    at crf 19, or with ``lossless`` at crf 0 for another stage to read."""
    return builder.add(
        "VHS_VideoCombine",
        {
            "images": images,
            "frame_rate": frame_rate,
            "loop_count": 0,
            "filename_prefix": prefix,
            # The format's own widgets are flat inputs; sent explicitly so the result does not
            # depend on VHS's defaults (docs/comfyui.md#nodes-vidgen-builds-with).
            **(_LOSSLESS_WIDGETS if lossless else _DELIVERY_WIDGETS),
            "save_metadata": True,
            "trim_to_audio": False,
            "pingpong": False,
            "save_output": True,
        },
    )
