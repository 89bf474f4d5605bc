"""The fraction of a prompt done, from ComfyUI's ``executing``/``progress``/``executed`` events.

Nodes are weighed by their usual share of the time (docs/comfyui.md#measured: the sampler dominates
text-to-video, the upscale model and the video combine share an upscale, RIFE an interpolation);
nodes ComfyUI took from its cache count as done. The fraction never goes back.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from workflows.comfyui_types import PromptProgress

_NODE_WEIGHTS: dict[str, float] = {
    "KSampler": 70.0,
    "ImageUpscaleWithModel": 45.0,
    "RIFE VFI": 40.0,
    "VHS_VideoCombine": 10.0,
    "VAEDecodeTiled": 8.0,
    "VAEDecode": 5.0,
    "IPAdapterAdvanced": 5.0,
    "ADE_LoadAnimateDiffModel": 4.0,
    "CheckpointLoaderSimple": 3.0,
    "VHS_LoadVideo": 3.0,
}
_DEFAULT_WEIGHT = 1.0


class ProgressTracker:
    """Turns one prompt's events into ``PromptProgress`` reports."""

    def __init__(self, prompt_id: str, graph: Mapping[str, Any]) -> None:
        self._prompt_id = prompt_id
        self._class_types = {str(k): str(v.get("class_type")) for k, v in graph.items()}
        self._weights = {
            k: _NODE_WEIGHTS.get(v, _DEFAULT_WEIGHT) for k, v in self._class_types.items()
        }
        self._total = sum(self._weights.values())
        self._done: set[str] = set()
        self._current: str | None = None
        self._partial = 0.0
        self._fraction = 0.0

    def update(self, kind: str, data: Mapping[str, Any]) -> PromptProgress | None:
        """The report an event makes, or None for events that move nothing."""
        if kind == "execution_cached":
            self._done.update(str(node) for node in data.get("nodes") or ())
            return self._report(None, 0, 0)
        node = data.get("node")
        if kind == "executed" and node is not None:
            self._done.add(str(node))
        elif kind == "executing" and node is not None:
            self._start(str(node))
            return self._report(str(node), 0, 0)
        elif kind == "progress" and node is not None:
            value, maximum = int(data.get("value") or 0), int(data.get("max") or 0)
            if str(node) != self._current:
                self._start(str(node))
            self._partial = value / maximum if maximum > 0 else 0.0
            return self._report(str(node), value, maximum)
        return None

    def finished(self) -> PromptProgress:
        """The last report of a prompt that ended well."""
        self._fraction = 1.0
        return PromptProgress(self._prompt_id, None, None, 1, 1, 1.0)

    def _start(self, node_id: str) -> None:
        # ComfyUI runs one node at a time, so a new node means the previous one is done.
        if self._current is not None:
            self._done.add(self._current)
        self._current = node_id
        self._partial = 0.0

    def _report(self, node_id: str | None, value: int, maximum: int) -> PromptProgress:
        if self._total > 0:
            done = sum(self._weights.get(node, 0.0) for node in self._done)
            running = 0.0
            if self._current is not None and self._current not in self._done:
                running = self._weights.get(self._current, 0.0) * self._partial
            self._fraction = max(self._fraction, min(1.0, (done + running) / self._total))
        class_type = self._class_types.get(node_id) if node_id is not None else None
        return PromptProgress(self._prompt_id, node_id, class_type, value, maximum, self._fraction)
