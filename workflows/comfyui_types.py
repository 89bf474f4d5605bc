"""What the ComfyUI client returns: typed results, and the parsing of ComfyUI's JSON into them.

Pure functions over the answers described in docs/comfyui.md (endpoints, /prompt errors,
events); ``workflows.comfyui_client`` does the talking and hands the JSON here, so the rest of
vidgen never sees raw ComfyUI JSON.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from vidgen.errors import ComfyUIError, ComfyUIExecutionError, ComfyUIInterrupted

# Where each output node lists its files in its "ui" dict: VideoHelperSuite lists its video under
# "gifs" for every format (trap, docs/comfyui.md#traps), SaveImage/PreviewImage under "images".
OUTPUT_KEYS = ("gifs", "images")


@dataclass(frozen=True, slots=True)
class DeviceStats:
    """One torch device of a backend; on a CPU-only server, vram is the RAM
    (docs/comfyui.md#endpoints)."""

    name: str
    type: str
    index: int | None
    vram_total: int
    vram_free: int


@dataclass(frozen=True, slots=True)
class SystemStats:
    """What ``/system_stats`` says about a backend."""

    comfyui_version: str
    python_version: str
    pytorch_version: str
    ram_total: int
    ram_free: int
    devices: tuple[DeviceStats, ...]


@dataclass(frozen=True, slots=True)
class QueueEntry:
    """A prompt in ComfyUI's queue; ``client_id`` is None when it was queued without one."""

    prompt_id: str
    number: float
    client_id: str | None


@dataclass(frozen=True, slots=True)
class QueueState:
    """The running prompt (at most one) and the pending ones in the order ComfyUI will run them."""

    running: tuple[QueueEntry, ...]
    pending: tuple[QueueEntry, ...]

    def is_running(self, prompt_id: str) -> bool:
        return any(entry.prompt_id == prompt_id for entry in self.running)

    def is_pending(self, prompt_id: str) -> bool:
        return any(entry.prompt_id == prompt_id for entry in self.pending)


@dataclass(frozen=True, slots=True)
class OutputFile:
    """One file an output node wrote; ``format``/``frame_rate`` are set for VideoCombine videos."""

    node_id: str
    filename: str
    subfolder: str
    type: str
    format: str | None = None
    frame_rate: float | None = None


@dataclass(frozen=True, slots=True)
class PromptResult:
    """A prompt that ran to the end: the files it wrote, and the nodes taken from the cache."""

    prompt_id: str
    outputs: tuple[OutputFile, ...]
    cached_nodes: tuple[str, ...] = ()

    @property
    def videos(self) -> tuple[OutputFile, ...]:
        """The VideoCombine outputs (those with a format), in node order."""
        return tuple(output for output in self.outputs if output.format is not None)


@dataclass(frozen=True, slots=True)
class PromptProgress:
    """Where a running prompt is: the node at work, its own value/max, and the whole prompt's part.

    ``fraction`` (0..1) weighs nodes by their usual cost, the sampler most, so a job's percent moves
    with the time spent rather than with the count of nodes.
    """

    prompt_id: str
    node_id: str | None
    class_type: str | None
    value: int
    max: int
    fraction: float


class PromptState(StrEnum):
    PENDING = "pending"
    RUNNING = "running"
    FINISHED = "finished"
    FAILED = "failed"
    UNKNOWN = "unknown"


@dataclass(frozen=True, slots=True)
class PromptLookup:
    """What ComfyUI knows of one prompt; ``result`` when finished, ``error`` when failed."""

    prompt_id: str
    state: PromptState
    result: PromptResult | None = None
    error: ComfyUIError | None = None


def parse_system_stats(body: Mapping[str, Any]) -> SystemStats:
    system = body.get("system") or {}
    devices = tuple(
        DeviceStats(
            name=str(device.get("name", "")),
            type=str(device.get("type", "")),
            index=device.get("index") if isinstance(device.get("index"), int) else None,
            vram_total=int(device.get("vram_total") or 0),
            vram_free=int(device.get("vram_free") or 0),
        )
        for device in body.get("devices") or ()
        if isinstance(device, dict)
    )
    return SystemStats(
        comfyui_version=str(system.get("comfyui_version", "")),
        python_version=str(system.get("python_version", "")),
        pytorch_version=str(system.get("pytorch_version", "")),
        ram_total=int(system.get("ram_total") or 0),
        ram_free=int(system.get("ram_free") or 0),
        devices=devices,
    )


def parse_queue(body: Mapping[str, Any]) -> QueueState:
    """``/queue``; pending items are sorted by number, the order ComfyUI takes them
    (docs/comfyui.md#traps)."""
    running = tuple(_queue_entry(item) for item in body.get("queue_running") or ())
    pending = sorted((_queue_entry(item) for item in body.get("queue_pending") or ()), key=_number)
    return QueueState(running=running, pending=tuple(pending))


def _number(entry: QueueEntry) -> float:
    return entry.number


def _queue_entry(item: list[Any]) -> QueueEntry:
    extra = item[3] if len(item) > 3 and isinstance(item[3], dict) else {}
    client_id = extra.get("client_id")
    return QueueEntry(
        prompt_id=str(item[1]),
        number=float(item[0]),
        client_id=str(client_id) if client_id is not None else None,
    )


def find_queued(body: Mapping[str, Any], prompt_id: str) -> tuple[dict[str, Any], str | None]:
    """The graph and client id of a prompt in a ``/queue`` answer; ``({}, None)`` if not there."""
    for item in [*(body.get("queue_running") or ()), *(body.get("queue_pending") or ())]:
        if len(item) > 2 and item[1] == prompt_id and isinstance(item[2], dict):
            return item[2], _queue_entry(item).client_id
    return {}, None


def parse_history_item(prompt_id: str, item: Mapping[str, Any]) -> PromptLookup:
    """One ``/history/{id}`` entry: finished with its files, or failed with the error in words."""
    status = item.get("status") or {}
    messages = [m for m in status.get("messages") or () if isinstance(m, list) and len(m) == 2]
    for name, data in messages:
        if name == "execution_error":
            return PromptLookup(prompt_id, PromptState.FAILED, error=execution_error(data))
        if name == "execution_interrupted":
            return PromptLookup(prompt_id, PromptState.FAILED, error=interrupted_error(data))
    if status.get("status_str") == "error":
        error = ComfyUIExecutionError(f"ComfyUI reported that prompt {prompt_id} failed")
        return PromptLookup(prompt_id, PromptState.FAILED, error=error)
    cached = next(
        (data.get("nodes") or [] for name, data in messages if name == "execution_cached"), []
    )
    result = PromptResult(
        prompt_id=prompt_id,
        outputs=parse_outputs(item.get("outputs") or {}),
        cached_nodes=tuple(str(node) for node in cached),
    )
    return PromptLookup(prompt_id, PromptState.FINISHED, result=result)


def parse_outputs(outputs: Mapping[str, Any]) -> tuple[OutputFile, ...]:
    """The files of every output node, from history ``outputs`` (the nodes' "ui" dicts)."""
    files: list[OutputFile] = []
    for node_id, ui in outputs.items():
        for key in OUTPUT_KEYS:
            for entry in (ui or {}).get(key) or ():
                files.append(_output_file(str(node_id), entry))
    return tuple(files)


def _output_file(node_id: str, entry: Mapping[str, Any]) -> OutputFile:
    frame_rate = entry.get("frame_rate")
    return OutputFile(
        node_id=node_id,
        filename=str(entry["filename"]),
        subfolder=str(entry.get("subfolder") or ""),
        type=str(entry.get("type") or "output"),
        format=str(entry["format"]) if entry.get("format") else None,
        frame_rate=float(frame_rate) if isinstance(frame_rate, int | float) else None,
    )


def execution_error(data: Mapping[str, Any]) -> ComfyUIExecutionError:
    """An ``execution_error`` event (or its history copy) as an error a person can read."""
    message = str(data.get("exception_message") or "").strip() or "no message"
    kind = str(data.get("exception_type") or "error").rsplit(".", 1)[-1]
    where = f"node {data.get('node_id')} ({data.get('node_type')})"
    return ComfyUIExecutionError(f"ComfyUI failed in {where}: {kind}: {message}")


def interrupted_error(data: Mapping[str, Any]) -> ComfyUIInterrupted:
    where = f"node {data.get('node_id')} ({data.get('node_type')})"
    return ComfyUIInterrupted(f"the prompt was interrupted in ComfyUI at {where}")


def describe_rejection(body: Any) -> str:
    """A 400 from ``/prompt`` in words: each bad node, its type, input and message
    (docs/comfyui.md#submitting-a-prompt)."""
    body = body if isinstance(body, dict) else {}
    parts: list[str] = []
    for node_id, node_error in (body.get("node_errors") or {}).items():
        class_type = node_error.get("class_type", "?")
        for error in node_error.get("errors") or ():
            parts.append(
                f"node {node_id} ({class_type}){_input_words(error)}: {_error_words(error)}"
            )
    if not parts:
        error = body.get("error")
        parts.append(
            _error_words(error) if isinstance(error, dict) else str(error or "no reason given")
        )
    return "ComfyUI rejected the graph: " + "; ".join(parts)


def _input_words(error: Mapping[str, Any]) -> str:
    name = (error.get("extra_info") or {}).get("input_name")
    return f", input {name!r}" if name else ""


def _error_words(error: Mapping[str, Any]) -> str:
    message = str(error.get("message") or error.get("type") or "invalid")
    details = str(error.get("details") or "")
    input_name = (error.get("extra_info") or {}).get("input_name")
    # For a missing input the details repeat the input name, already said.
    return f"{message} ({details})" if details and details != input_name else message
