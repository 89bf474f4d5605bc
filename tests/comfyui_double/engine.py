"""The double's 'ComfyUI process' without HTTP: files, the queue worker, caching and WS events.

One executor task takes the lowest-numbered prompt and runs its nodes one by one, sending the
messages of docs/comfyui.md#websocket in the captured order: ``execution_start``,
``execution_cached``, per node ``progress_state``/``executing``/``progress``/``executed``, then
``execution_success`` (or ``execution_error``/``execution_interrupted``), ``status`` and
``executing{node:null}``.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import shutil
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tests.comfyui_double import media, nodes
from tests.comfyui_double.graph import ExecutionOrder, is_link, signatures
from tests.comfyui_double.hub import Hub
from tests.comfyui_double.schema import NodeSchemas
from tests.comfyui_double.state import (
    Controls,
    History,
    Observations,
    PromptQueue,
    QueueItem,
    RunRecord,
)

ANNOTATIONS = {" [input]": "input", " [output]": "output", " [temp]": "temp"}
HASHED_LOADERS = {"LoadImage", "LoadImageMask", "VHS_LoadVideo", "VHS_LoadVideoPath"}
# VHS_VideoCombine declares a catch-all hidden input, so undeclared inputs (pix_fmt, crf) reach it.
TAKES_ALL_INPUTS = {"VHS_VideoCombine"}


class Interrupted(Exception):
    """POST /interrupt reached the running prompt."""


class NodeError(Exception):
    """A node failed; carries the fields of ``execution_error``."""

    def __init__(
        self, node_id: str, message: str, exception_type: str, inputs: dict[str, Any]
    ) -> None:
        super().__init__(message)
        self.node_id = node_id
        self.exception_type = exception_type
        self.inputs = inputs


@dataclass
class CacheEntry:
    outputs: tuple[Any, ...]
    ui: dict[str, Any] | None


@dataclass
class Run:
    """One prompt being executed."""

    item: QueueItem
    signatures: dict[str, str]
    messages: list[tuple[str, dict[str, Any]]] = field(default_factory=list)
    progress: dict[str, dict[str, Any]] = field(default_factory=dict)
    executed: list[str] = field(default_factory=list)
    current: str = ""

    @property
    def prompt_id(self) -> str:
        return str(self.item[1])

    @property
    def prompt(self) -> dict[str, Any]:
        prompt: dict[str, Any] = self.item[2]
        return prompt

    @property
    def client_id(self) -> str | None:
        client: str | None = self.item[3].get("client_id")
        return client


def format_value(value: Any) -> Any:
    if value is None or isinstance(value, int | float | bool | str):
        return value
    return str(value)


def now_ms() -> int:
    return int(time.time() * 1000)


class Engine:
    """Queue, history, cache and the executor task of one double."""

    def __init__(
        self, root: Path, schemas: NodeSchemas, controls: Controls, observations: Observations
    ) -> None:
        self.root = root
        self.schemas = schemas
        self.controls = controls
        self.observations = observations
        self.hub = Hub(controls)
        self.queue = PromptQueue()
        self.history = History()
        self.cache: dict[str, CacheEntry] = {}
        self.number = 0
        self.client_id: str | None = None
        self.last_node_id: str | None = None
        self.interrupt_requested = False
        self.stalled = False
        self.stall_target: str | None = None
        self.stalling_now = False
        self._wake = asyncio.Event()
        self._worker: asyncio.Task[None] | None = None
        self._record: RunRecord | None = None
        for kind in ("input", "output", "temp"):
            self.directory(kind).mkdir(parents=True, exist_ok=True)

    # -- lifecycle -------------------------------------------------------------------------

    def start(self) -> None:
        self.hub.start()
        self._worker = asyncio.get_running_loop().create_task(self._work_loop())

    async def stop(self) -> None:
        await self._stop_worker()
        await self.hub.stop()

    async def _stop_worker(self) -> None:
        if self._worker is not None:
            self._worker.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._worker
        if self._record is not None:
            self.observations.ended(self._record, "lost")
            self._record = None

    async def restart(self) -> None:
        """Like a ComfyUI restart: queue, history, cache and sockets are lost; files stay."""
        await self._stop_worker()
        self.hub.drop_all()
        self.queue = PromptQueue()
        self.history = History()
        self.cache.clear()
        self.number = 0
        self.client_id = self.last_node_id = None
        self.interrupt_requested = self.stalled = self.stalling_now = False
        shutil.rmtree(self.directory("temp"), ignore_errors=True)  # real ComfyUI wipes temp/
        self.directory("temp").mkdir(parents=True, exist_ok=True)
        self._worker = asyncio.get_running_loop().create_task(self._work_loop())

    # -- files -----------------------------------------------------------------------------

    def directory(self, kind: str) -> Path:
        return self.root / kind

    def resolve_input(self, name: str) -> Path | None:
        """An existing file for a LoadImage-style name (``sub/x.png``, ``x.png [output]``)."""
        kind = "input"
        for suffix, folder in ANNOTATIONS.items():
            if name.endswith(suffix):
                name, kind = name[: -len(suffix)], folder
        base = self.directory(kind).resolve()
        path = (base / name).resolve()
        if not path.is_relative_to(base) or not path.is_file():
            return None
        return path

    def file_check(self, class_type: str, input_name: str, value: str) -> str | None:
        """VALIDATE_INPUTS of the loaders: None if fine, else the real message."""
        if class_type == "VHS_LoadVideoPath":
            path = Path(value.strip('"'))
            path = path if path.is_absolute() else self.root / path
            return None if path.is_file() else f"Invalid file path: {value}"
        if self.resolve_input(value) is not None:
            return None
        kind = "video" if class_type == "VHS_LoadVideo" else "image"
        return f"Invalid {kind} file: {value}"

    def _file_hash(self, class_type: str, inputs: dict[str, Any]) -> str:
        # Loaders re-run when their file's bytes change (their IS_CHANGED hashes the file).
        if class_type not in HASHED_LOADERS:
            return ""
        value = str(inputs.get("image", inputs.get("video", "")))
        path = Path(value) if class_type == "VHS_LoadVideoPath" else self.resolve_input(value)
        if path is None or not path.is_file():
            return ""
        return hashlib.sha256(path.read_bytes()).hexdigest()

    # -- queue -----------------------------------------------------------------------------

    def queue_info(self) -> dict[str, Any]:
        return {"exec_info": {"queue_remaining": self.queue.remaining()}}

    def queue_updated(self) -> None:
        self.observations.queue_size(self.queue.remaining())
        self.hub.send("status", {"status": self.queue_info()}, None)

    def enqueue(self, item: QueueItem) -> None:
        self.queue.put(item)
        self.queue_updated()

    def interrupt(self, prompt_id: str | None) -> None:
        running = self.queue.running
        if prompt_id and (running is None or running[1] != prompt_id):
            return
        self.interrupt_requested = True
        self.stalled = False  # an interrupt ends a stall; a test may stall again right after
        self._wake.set()

    def stall(self, at: str | None = None) -> None:
        self.stalled, self.stall_target = True, at

    def release(self) -> None:
        self.stalled = False
        self._wake.set()

    # -- execution -------------------------------------------------------------------------

    async def _work_loop(self) -> None:
        while True:
            item = await self.queue.get()
            self.queue_updated()
            self._record = self.observations.started(item)
            outcome = await self._run(item)
            self.observations.ended(self._record, outcome)
            self._record = None

    async def _run(self, item: QueueItem) -> str:
        self.interrupt_requested = False
        run = Run(item, signatures(item[2], self._file_hash))
        self.client_id = run.client_id
        self._message(run, "execution_start", {"prompt_id": run.prompt_id})
        outcome = await self._execute(run)
        outputs, meta = self._history_outputs(run)
        self.last_node_id = None
        if self.controls.history_delay_seconds > 0:
            await asyncio.sleep(self.controls.history_delay_seconds)
        status = {
            "status_str": "success" if outcome == "success" else "error",
            "completed": outcome == "success",
            "messages": [list(m) for m in run.messages],
        }
        finished = self.queue.running or item
        self.queue.running = None
        self.history.add(finished, outputs, status, meta)
        self.queue_updated()
        if run.client_id is not None:
            self.hub.send("executing", {"node": None, "prompt_id": run.prompt_id}, run.client_id)
        return outcome

    async def _execute(self, run: Run) -> str:
        # Classic cache: only entries used by this prompt survive it (ComfyUI's clean_unused).
        wanted = set(run.signatures.values())
        self.cache = {k: v for k, v in self.cache.items() if k in wanted}
        cached = [n for n in run.prompt if run.signatures[n] in self.cache]
        self._message(run, "execution_cached", {"nodes": cached, "prompt_id": run.prompt_id})
        order = ExecutionOrder(
            run.prompt, self._is_output(run), lambda n: run.signatures[n] in self.cache
        )
        for output_id in run.item[4]:
            order.add_output(output_id)
        try:
            while not order.is_empty():
                node_id = order.next_node()
                await self._execute_node(run, node_id)
                order.complete(node_id)
        except Interrupted:
            self._interrupted(run)
            return "interrupted"
        except NodeError as error:
            self._errored(run, error)
            return "error"
        self._message(run, "execution_success", {"prompt_id": run.prompt_id})
        return "success"

    def _is_output(self, run: Run) -> Any:
        return lambda node_id: self.schemas.is_output_node(run.prompt[node_id]["class_type"])

    async def _execute_node(self, run: Run, node_id: str) -> None:
        node = run.prompt[node_id]
        entry = self.cache.get(run.signatures[node_id])
        if entry is not None:
            if run.client_id is not None:
                self._executed(run, node_id, entry.ui)
            self._progress_finish(run, node_id, cached=True)
            return
        run.current = node_id
        self._progress_start(run, node_id)
        if run.client_id is not None:
            self.last_node_id = node_id
            self.hub.send(
                "executing",
                {"node": node_id, "display_node": node_id, "prompt_id": run.prompt_id},
                run.client_id,
            )
        inputs = self._node_inputs(run, node)
        await self.checkpoint(run, tick=False)
        result = await self._call_node(run, node_id, inputs)
        self.cache[run.signatures[node_id]] = CacheEntry(result.outputs, result.ui)
        if result.ui and run.client_id is not None:
            self._executed(run, node_id, result.ui)
        self._progress_finish(run, node_id)
        run.executed.append(node_id)

    async def _call_node(self, run: Run, node_id: str, inputs: dict[str, Any]) -> nodes.NodeResult:
        class_type = run.prompt[node_id]["class_type"]
        shown = {name: [format_value(value)] for name, value in inputs.items()}
        failure = self.controls.take_failure(node_id, class_type)
        if failure is not None:
            raise NodeError(node_id, failure.message, failure.exception_type, shown)
        context = NodeContext(self, run, node_id, class_type)
        try:
            return await nodes.behaviour_for(class_type)(context, inputs)
        except nodes.NodeFailure as exc:
            raise NodeError(node_id, str(exc), exc.exception_type, shown) from exc
        except media.MediaError as exc:
            raise NodeError(node_id, str(exc), "RuntimeError", shown) from exc

    def _node_inputs(self, run: Run, node: dict[str, Any]) -> dict[str, Any]:
        info = self.schemas.raw(node["class_type"])["input"]
        declared = {**info.get("required", {}), **info.get("optional", {})}
        take_all = node["class_type"] in TAKES_ALL_INPUTS
        values = {}
        for name, value in node["inputs"].items():
            if name not in declared and not take_all:
                continue  # real ComfyUI drops undeclared inputs before calling the node
            values[name] = self._link_value(run, value) if is_link(value) else value
        return values

    def _link_value(self, run: Run, link: list[Any]) -> Any:
        entry = self.cache.get(run.signatures[link[0]])
        if entry is None or link[1] >= len(entry.outputs):
            return nodes.Handle("UNKNOWN")
        return entry.outputs[link[1]]

    def _stalls_here(self, run: Run, tick: bool) -> bool:
        if not self.stalled:
            return False
        if self.stall_target is None:
            return True
        # A targeted stall holds its node at a progress tick, so clients have seen it running.
        class_type = run.prompt[run.current]["class_type"]
        return tick and self.stall_target in (run.current, class_type)

    async def checkpoint(self, run: Run, tick: bool) -> None:
        """Where a real node checks for an interrupt; also where ``stall`` holds the run."""
        while True:
            if self.interrupt_requested:
                self.interrupt_requested = False
                raise Interrupted
            if not self._stalls_here(run, tick):
                return
            self.stalling_now = True
            self._wake.clear()
            try:
                await self._wake.wait()
            finally:
                self.stalling_now = False

    # -- messages --------------------------------------------------------------------------

    def _message(self, run: Run, event: str, data: dict[str, Any], broadcast: bool = False) -> None:
        """A status message: kept for history, sent to the prompt's client (or all if broadcast)."""
        data = {**data, "timestamp": now_ms()}
        run.messages.append((event, data))
        if run.client_id is not None or broadcast:
            self.hub.send(event, data, run.client_id)

    def _executed(self, run: Run, node_id: str, ui: dict[str, Any] | None) -> None:
        data = {"node": node_id, "display_node": node_id, "output": ui, "prompt_id": run.prompt_id}
        self.hub.send("executed", data, run.client_id)

    def _progress_state(self, run: Run) -> None:
        nodes_state = {
            node_id: {
                **state, "node_id": node_id, "prompt_id": run.prompt_id,
                "display_node_id": node_id, "parent_node_id": None, "real_node_id": node_id,
            }
            for node_id, state in run.progress.items()
        }  # fmt: skip
        self.hub.send(
            "progress_state", {"prompt_id": run.prompt_id, "nodes": nodes_state}, run.client_id
        )

    def _progress_start(self, run: Run, node_id: str) -> None:
        run.progress[node_id] = {"value": 0.0, "max": 1.0, "state": "running"}
        self._progress_state(run)

    def _progress_finish(self, run: Run, node_id: str, cached: bool = False) -> None:
        state = run.progress.setdefault(node_id, {"value": 0, "max": 1, "state": "pending"})
        state.update({"value": state["max"], "state": "finished"})
        if cached:
            state.update({"value": 1, "max": 1})
        self._progress_state(run)

    async def progress(self, run: Run, node_id: str, value: int, maximum: int) -> None:
        await self.checkpoint(run, tick=False)  # the real progress hook checks before sending
        run.progress[node_id] = {"value": value, "max": maximum, "state": "running"}
        self._progress_state(run)
        data = {"value": value, "max": maximum, "prompt_id": run.prompt_id, "node": node_id}
        self.hub.send("progress", data, run.client_id)
        await asyncio.sleep(0)  # let HTTP handlers (interrupt, queue) in between steps
        await self.checkpoint(run, tick=True)

    def _interrupted(self, run: Run) -> None:
        node_id = run.current
        data = {
            "prompt_id": run.prompt_id,
            "node_id": node_id,
            "node_type": run.prompt.get(node_id, {}).get("class_type", ""),
            "executed": list(run.executed),
        }
        self._message(run, "execution_interrupted", data, broadcast=True)

    def _errored(self, run: Run, error: NodeError) -> None:
        data = {
            "prompt_id": run.prompt_id,
            "node_id": error.node_id,
            "node_type": run.prompt[error.node_id]["class_type"],
            "executed": list(run.executed),
            "exception_message": f"{error}\n",
            "exception_type": error.exception_type,
            "traceback": [
                f'  File "{self.root}/execution.py", line 496, in execute\n',
                f'  File "{self.root}/execution.py", line 277, in process_inputs\n',
            ],
            "current_inputs": error.inputs,
            "current_outputs": list(run.prompt),
        }
        self._message(run, "execution_error", data)

    def _history_outputs(self, run: Run) -> tuple[dict[str, Any], dict[str, Any]]:
        outputs: dict[str, Any] = {}
        meta: dict[str, Any] = {}
        for node_id in run.prompt:
            entry = self.cache.get(run.signatures[node_id])
            if entry is not None and entry.ui:
                outputs[node_id] = entry.ui
                meta[node_id] = {
                    "node_id": node_id, "display_node": node_id,
                    "parent_node": None, "real_node_id": node_id,
                }  # fmt: skip
        return outputs, meta

    def new_prompt_id(self) -> str:
        return str(uuid.uuid4())


class NodeContext:
    """The ``nodes.Context`` a behaviour gets: progress, folders, step time."""

    def __init__(self, engine: Engine, run: Run, node_id: str, class_type: str) -> None:
        self.engine = engine
        self.run = run
        self.node_id = node_id
        self.class_type = class_type
        self.output_types = engine.schemas.outputs(class_type)
        self.step_seconds = engine.controls.step_seconds

    async def progress(self, value: int, maximum: int) -> None:
        await self.engine.progress(self.run, self.node_id, value, maximum)

    def directory(self, kind: str) -> Path:
        return self.engine.directory(kind)

    def resolve_input(self, name: str) -> Path | None:
        return self.engine.resolve_input(name)
