"""The double's server-side state: queue, history, test controls and observations.

Everything here is touched from the double's event loop only, except ``Observations`` (read by
tests from their own thread, hence the lock) and the plain control fields (single assignments).
"""

from __future__ import annotations

import asyncio
import copy
import heapq
import itertools
import threading
import time
from dataclasses import asdict, dataclass, field
from typing import Any

QueueItem = list[Any]  # [number, prompt_id, prompt, extra_data, outputs_to_execute]
MAXIMUM_HISTORY_SIZE = 10000
SENSITIVE_EXTRA_DATA_KEYS = ("auth_token_comfy_org", "api_key_comfy_org")


class PromptQueue:
    """ComfyUI's queue: a heap on ``number`` (lowest runs first) plus the running item."""

    def __init__(self) -> None:
        self._heap: list[tuple[float, int, QueueItem]] = []
        self._seq = itertools.count()
        self.running: QueueItem | None = None
        self._not_empty = asyncio.Event()

    def put(self, item: QueueItem) -> None:
        heapq.heappush(self._heap, (item[0], next(self._seq), item))
        self._not_empty.set()

    async def get(self) -> QueueItem:
        while not self._heap:
            self._not_empty.clear()
            await self._not_empty.wait()
        item = heapq.heappop(self._heap)[2]
        self.running = copy.deepcopy(item)
        return item

    def pending(self) -> list[QueueItem]:
        """Heap order, like the real server (not sorted)."""
        return [entry[2] for entry in self._heap]

    def remaining(self) -> int:
        return len(self._heap) + (1 if self.running is not None else 0)

    def delete(self, prompt_id: str) -> bool:
        for index, entry in enumerate(self._heap):
            if entry[2][1] == prompt_id:
                self._heap.pop(index)
                heapq.heapify(self._heap)
                return True
        return False

    def clear(self) -> None:
        self._heap.clear()


class History:
    """Finished prompts, oldest first, with ComfyUI's paging rules."""

    def __init__(self) -> None:
        self.items: dict[str, dict[str, Any]] = {}

    def add(
        self, item: QueueItem, outputs: dict[str, Any], status: dict[str, Any], meta: dict[str, Any]
    ) -> None:
        if len(self.items) > MAXIMUM_HISTORY_SIZE:
            self.items.pop(next(iter(self.items)))
        for key in SENSITIVE_EXTRA_DATA_KEYS:
            item[3].pop(key, None)
        self.items[item[1]] = {"prompt": item, "outputs": outputs, "status": status, "meta": meta}

    def get(self, max_items: int | None, offset: int) -> dict[str, Any]:
        if offset < 0 and max_items is not None:
            offset = len(self.items) - max_items
        out: dict[str, Any] = {}
        for index, (key, value) in enumerate(self.items.items()):
            if index >= offset:
                out[key] = value
                if max_items is not None and len(out) >= max_items:
                    break
        return copy.deepcopy(out)

    def one(self, prompt_id: str) -> dict[str, Any]:
        if prompt_id not in self.items:
            return {}
        return {prompt_id: copy.deepcopy(self.items[prompt_id])}


@dataclass
class Failure:
    """A planned execution-time error: ``target`` is a node id or a class_type."""

    target: str
    message: str
    exception_type: str = "RuntimeError"
    times: int | None = None  # None = every time


@dataclass
class Controls:
    """Knobs a test turns; see ComfyUIDouble for what each one means."""

    step_seconds: float = 0.01
    history_delay_seconds: float = 0.0
    silent_socket: bool = False
    failures: list[Failure] = field(default_factory=list)
    vram_total: int = 12 * 1024**3
    vram_free: int = 11 * 1024**3
    comfyui_version: str = "0.3.64"  # what /system_stats reports

    def take_failure(self, node_id: str, class_type: str) -> Failure | None:
        for failure in self.failures:
            if failure.target in (node_id, class_type):
                if failure.times is not None:
                    failure.times -= 1
                    if failure.times <= 0:
                        self.failures.remove(failure)
                return failure
        return None


@dataclass
class ReceivedPrompt:
    """One POST /prompt as the double saw it (accepted or not)."""

    prompt_id: str | None
    client_id: str | None
    number: float | None
    accepted: bool
    status: int
    prompt: Any
    received_at: float


@dataclass
class RunRecord:
    """One executed prompt; times are ``time.monotonic()`` of the double's process."""

    prompt_id: str
    client_id: str | None
    number: float
    started_at: float
    ended_at: float | None = None
    status: str | None = None  # success | error | interrupted | lost (restart)


class Observations:
    """What tests check afterwards: prompts received, runs with times, concurrency maxima."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.prompts: list[ReceivedPrompt] = []
        self.runs: list[RunRecord] = []
        self.running_now = 0
        self.max_running = 0
        self.max_queue_remaining = 0

    def received(self, record: ReceivedPrompt) -> None:
        with self._lock:
            self.prompts.append(record)

    def queue_size(self, remaining: int) -> None:
        with self._lock:
            self.max_queue_remaining = max(self.max_queue_remaining, remaining)

    def started(self, item: QueueItem) -> RunRecord:
        record = RunRecord(item[1], item[3].get("client_id"), item[0], time.monotonic())
        with self._lock:
            self.runs.append(record)
            self.running_now += 1
            self.max_running = max(self.max_running, self.running_now)
        return record

    def ended(self, record: RunRecord, status: str) -> None:
        with self._lock:
            record.ended_at = time.monotonic()
            record.status = status
            self.running_now -= 1

    def idle_gaps(self) -> list[float]:
        """Seconds between one run's end and the next run's start, in start order."""
        with self._lock:
            runs = sorted(
                (r for r in self.runs if r.ended_at is not None), key=lambda r: r.started_at
            )
        return [b.started_at - a.ended_at for a, b in itertools.pairwise(runs) if a.ended_at]

    def snapshot(self) -> dict[str, Any]:
        with self._lock:
            return {
                "prompts": [asdict(p) for p in self.prompts],
                "runs": [asdict(r) for r in self.runs],
                "max_running": self.max_running,
                "max_queue_remaining": self.max_queue_remaining,
                "running_now": self.running_now,
            }
