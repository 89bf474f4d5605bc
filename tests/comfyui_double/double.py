"""``ComfyUIDouble``: a ComfyUI 0.3.64 look-alike on a loopback port, run in a background thread.

The server, its executor and its WebSocket publisher live on one asyncio loop in one thread; the
methods below are called from the test's thread and hand work to that loop. See the package
docstring for the controls and observations.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import threading
import time
from collections.abc import Coroutine
from pathlib import Path
from typing import Any, TypeVar

from aiohttp import web

from tests.comfyui_double.engine import Engine
from tests.comfyui_double.schema import NodeSchemas
from tests.comfyui_double.server import build_app, control_routes
from tests.comfyui_double.state import Controls, Failure, Observations, ReceivedPrompt, RunRecord

T = TypeVar("T")
DEFAULT_OBJECT_INFO = (
    Path(__file__).resolve().parents[2] / "workflows" / "data" / "object_info.json"
)
CALL_TIMEOUT = 30.0


class ComfyUIDouble:
    """A fake ComfyUI that vidgen's client cannot tell from the real one (within
    docs/comfyui.md)."""

    def __init__(
        self,
        root_dir: Path,
        object_info_path: Path = DEFAULT_OBJECT_INFO,
        *,
        port: int = 0,
        host: str = "127.0.0.1",
        step_seconds: float = 0.01,
    ) -> None:
        self.root_dir = Path(root_dir)
        self.object_info_path = Path(object_info_path)
        self.host = host
        self.port = port
        self.controls = Controls(step_seconds=step_seconds)
        self.observations = Observations()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._engine: Engine | None = None
        self._runner: web.AppRunner | None = None

    # -- lifecycle -------------------------------------------------------------------------

    def start(self) -> ComfyUIDouble:
        """Bind ``host:port`` (port 0 = any free port) and serve in a background thread."""
        self.root_dir.mkdir(parents=True, exist_ok=True)
        loop = asyncio.new_event_loop()
        self._loop = loop
        self._thread = threading.Thread(target=loop.run_forever, name="comfyui-double", daemon=True)
        self._thread.start()
        self._call(self._startup())
        return self

    async def _startup(self) -> None:
        schemas = NodeSchemas(self.object_info_path, self.root_dir / "input")
        self._engine = Engine(self.root_dir, schemas, self.controls, self.observations)
        self._engine.start()
        await self._listen()

    async def _listen(self) -> None:
        engine = self.engine
        app = build_app(engine, self, control_routes(engine, self))
        runner = web.AppRunner(app, access_log=None, shutdown_timeout=0.5)
        await runner.setup()
        site = web.TCPSite(runner, self.host, self.port, reuse_address=True)
        await site.start()
        self._runner = runner
        self.port = int(runner.addresses[0][1])

    async def _unlisten(self) -> None:
        self.engine.hub.drop_all()
        if self._runner is not None:
            runner, self._runner = self._runner, None
            await runner.cleanup()

    def stop(self) -> None:
        """Stop serving, end the executor (and any ffmpeg it runs) and the thread."""
        if self._loop is None or self._thread is None:
            return
        if self._engine is not None:
            self._call(self._shutdown())
        loop = self._loop
        loop.call_soon_threadsafe(loop.stop)
        self._thread.join(timeout=CALL_TIMEOUT)
        loop.close()
        self._loop = self._thread = None

    async def _shutdown(self) -> None:
        await self._unlisten()
        await self.engine.stop()
        current = asyncio.current_task()
        others = [t for t in asyncio.all_tasks() if t is not current]
        for task in others:
            task.cancel()
        await asyncio.gather(*others, return_exceptions=True)

    def __enter__(self) -> ComfyUIDouble:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    @property
    def ws_url(self) -> str:
        return f"ws://{self.host}:{self.port}/ws"

    @property
    def engine(self) -> Engine:
        if self._engine is None:
            raise RuntimeError("the double is not started")
        return self._engine

    @property
    def input_dir(self) -> Path:
        return self.root_dir / "input"

    def uploaded(self, pattern: str) -> list[str]:
        """Names of the uploaded files matching ``pattern`` (as a real server's input folder)."""
        return sorted(p.name for p in self.input_dir.glob(pattern))

    @property
    def output_dir(self) -> Path:
        return self.root_dir / "output"

    @property
    def temp_dir(self) -> Path:
        return self.root_dir / "temp"

    def _call(self, coroutine: Coroutine[Any, Any, T]) -> T:
        if self._loop is None:
            coroutine.close()
            raise RuntimeError("the double is not started")
        future = asyncio.run_coroutine_threadsafe(coroutine, self._loop)
        try:
            return future.result(timeout=CALL_TIMEOUT)
        except concurrent.futures.TimeoutError:
            future.cancel()
            raise

    def _soon(self, function: Any, *args: Any) -> None:
        if self._loop is not None:
            self._loop.call_soon_threadsafe(function, *args)

    # -- controls --------------------------------------------------------------------------

    @property
    def step_seconds(self) -> float:
        """Simulated time of one sampler step (upscale tiles take a quarter of it)."""
        return self.controls.step_seconds

    @step_seconds.setter
    def step_seconds(self, seconds: float) -> None:
        self.controls.step_seconds = seconds

    @property
    def history_delay_seconds(self) -> float:
        """How long after ``execution_success`` the prompt stays running before history has it."""
        return self.controls.history_delay_seconds

    @history_delay_seconds.setter
    def history_delay_seconds(self, seconds: float) -> None:
        self.controls.history_delay_seconds = seconds

    @property
    def silent_socket(self) -> bool:
        """True: no WebSocket message reaches any socket; prompts still run and history fills."""
        return self.controls.silent_socket

    @silent_socket.setter
    def silent_socket(self, silent: bool) -> None:
        self.controls.silent_socket = silent

    def fail_at(
        self,
        target: str,
        message: str = "Simulated failure",
        exception_type: str = "RuntimeError",
        times: int | None = None,
    ) -> None:
        """Make the node with this id or class_type raise when it runs (``times``: how often)."""
        self.controls.failures.append(Failure(target, message, exception_type, times))

    def clear_failures(self) -> None:
        self.controls.failures.clear()

    def stall(self, at: str | None = None) -> None:
        """Hold the running (or next) prompt until ``release()`` or an interrupt.

        Without ``at`` it holds at the next node start or progress tick; with a node id or
        class_type it holds that node at its first progress tick (after one ``progress``).
        """
        self._soon(self.engine.stall, at)

    def release(self) -> None:
        self._soon(self.engine.release)

    @property
    def is_stalling(self) -> bool:
        """A prompt is held by ``stall`` right now."""
        return self.engine.stalling_now

    def wait_until_stalling(self, timeout: float = 10.0) -> None:
        deadline = time.monotonic() + timeout
        while not self.engine.stalling_now:
            if time.monotonic() > deadline:
                raise TimeoutError("no prompt stalled in time")
            time.sleep(0.005)

    def drop_sockets(self) -> None:
        """Close every WebSocket abruptly (no close frame)."""
        self._soon(self.engine.hub.drop_all)

    def restart(self) -> None:
        """Like a ComfyUI restart: queue, history, cache, counter and sockets lost; files kept."""
        self._call(self.engine.restart())

    def go_away(self) -> None:
        """Stop listening: connections are refused, open ones cut. Prompts keep running."""
        self._call(self._unlisten())

    def come_back(self) -> None:
        """Listen again on the same port."""
        self._call(self._listen())

    async def go_away_for(self, seconds: float) -> None:
        await asyncio.sleep(0.05)  # let the HTTP answer that asked for this leave first
        await self._unlisten()
        await asyncio.sleep(seconds)
        await self._listen()

    @property
    def comfyui_version(self) -> str:
        """The version ``/system_stats`` reports (0.3.64, the captured server's)."""
        return self.controls.comfyui_version

    @comfyui_version.setter
    def comfyui_version(self, version: str) -> None:
        self.controls.comfyui_version = version

    def set_models(self, folder: str, names: list[str]) -> None:
        """Install exactly these files in a model folder (checkpoints, vae, upscale_models, ...)."""
        self.engine.schemas.set_models(folder, names)

    @property
    def models(self) -> dict[str, list[str]]:
        return {k: list(v) for k, v in self.engine.schemas.models.items()}

    def set_vram(self, total: int, free: int) -> None:
        self.controls.vram_total, self.controls.vram_free = total, free

    # -- observations ----------------------------------------------------------------------

    @property
    def prompts_received(self) -> list[ReceivedPrompt]:
        """Every POST /prompt with a JSON body, accepted or rejected, in arrival order."""
        with self.observations._lock:
            return list(self.observations.prompts)

    @property
    def runs(self) -> list[RunRecord]:
        """Every prompt the executor started, with monotonic start/end times and outcome."""
        with self.observations._lock:
            return list(self.observations.runs)

    @property
    def max_running(self) -> int:
        return self.observations.max_running

    @property
    def max_queue_remaining(self) -> int:
        return self.observations.max_queue_remaining

    def idle_gaps(self) -> list[float]:
        return self.observations.idle_gaps()
