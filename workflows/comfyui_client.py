"""The only code that talks to ComfyUI: HTTP through httpx, events through one WebSocket.

One ``ComfyUIClient`` per backend, used by that backend's worker thread. It returns the dataclasses
of ``workflows.comfyui_types`` and raises only ``VidgenError``s: every httpx, websockets and socket
error becomes ``ComfyUIUnavailable`` (retryable). Each workaround names the trap it answers, from
docs/comfyui.md#traps.

The socket is advisory; ``/queue`` and ``/history`` are the truth. A background thread keeps one
socket per client (reconnecting with the same ``clientId``) and files each event under its prompt
id, for the prompts this client queued or follows, so the events of a prompt queued ahead of time
wait for ``follow`` while the worker is busy with the previous one. ``follow`` polls whenever the
socket drops, comes back, or stays quiet for ``quiet_socket_seconds``.
"""

from __future__ import annotations

import logging
import threading
import time
import uuid
from collections.abc import Iterable
from pathlib import Path
from types import TracebackType
from typing import IO, Any

import httpx
from tenacity import RetryError, Retrying, retry_if_result, stop_after_delay, wait_exponential
from websockets.exceptions import WebSocketException
from websockets.sync.client import ClientConnection, connect

from vidgen.config import ComfyUISettings
from vidgen.errors import (
    ComfyUIError,
    ComfyUIExecutionError,
    ComfyUIInterrupted,
    ComfyUIRejected,
    ComfyUIUnavailable,
    JobCancelled,
    StorageError,
)
from vidgen.specs import InstalledModels
from workflows.comfyui_follow import CancelCheck, EventHub, Follower, ProgressCallback
from workflows.comfyui_types import (
    OutputFile,
    PromptLookup,
    PromptResult,
    PromptState,
    QueueState,
    SystemStats,
    describe_rejection,
    find_queued,
    parse_history_item,
    parse_queue,
    parse_system_stats,
)
from workflows.models import installed_models_from_object_info
from workflows.progress import ProgressTracker

log = logging.getLogger(__name__)

# How often a prompt queued under another client id is polled: its events never reach us.
_FOREIGN_POLL_S = 1.0
_RECONNECT_MIN_S = 0.2
_RECONNECT_MAX_S = 5.0
# Previews are ~40 kB JPEGs (docs/comfyui.md#measured); this only guards against a runaway frame.
_MAX_MESSAGE_BYTES = 64 * 2**20
_DOWNLOAD_CHUNK_BYTES = 2**20
_VIDEO_SUFFIXES = (".mp4", ".webm", ".gif", ".mov", ".mkv")
# Closing waits for the server's close frame; a server that went away never sends one.
_CLOSE_TIMEOUT_S = 2.0


class _SocketReader:
    """The background thread that keeps one socket open with our clientId and feeds the hub."""

    def __init__(self, url: str, hub: EventHub, open_timeout_s: float) -> None:
        self._url = url
        self._hub = hub
        self._open_timeout_s = open_timeout_s
        self._stopping = threading.Event()
        self._lock = threading.Lock()
        self._socket: ClientConnection | None = None
        self._thread = threading.Thread(target=self._run, name="comfyui-socket", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stopping.set()
        with self._lock:
            if self._socket is not None:
                self._socket.close()
        self._thread.join(timeout=self._open_timeout_s + 5)

    def _run(self) -> None:
        delay_s = _RECONNECT_MIN_S
        while not self._stopping.is_set():
            try:
                if self._listen():
                    delay_s = _RECONNECT_MIN_S
            except (WebSocketException, OSError) as exc:
                log.debug("ComfyUI socket %s: %s", self._url, exc)
            self._stopping.wait(delay_s)
            delay_s = min(delay_s * 2, _RECONNECT_MAX_S)

    def _listen(self) -> bool:
        """Read until the socket closes; True when it was open at all."""
        # No proxy: ComfyUI is on this machine or its network (docs/architecture.md), never behind a
        # proxy.
        with connect(
            self._url,
            open_timeout=self._open_timeout_s,
            close_timeout=_CLOSE_TIMEOUT_S,
            max_size=_MAX_MESSAGE_BYTES,
            proxy=None,
        ) as socket:
            with self._lock:
                if self._stopping.is_set():
                    return False
                self._socket = socket
            self._hub.set_connected(True)
            try:
                for message in socket:
                    if isinstance(message, str):  # binary frames are previews: not used
                        self._hub.dispatch(message)
            finally:
                self._hub.set_connected(False)
                with self._lock:
                    self._socket = None
        return True


class ComfyUIClient:
    """A typed client of one ComfyUI backend at ``base_url``."""

    def __init__(
        self, base_url: str, settings: ComfyUISettings, client_id: str | None = None
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self.settings = settings
        # Trap: events reach only the socket whose clientId is the prompt's client_id
        # (docs/comfyui.md#traps), so this one id goes on the socket and on every prompt.
        self.client_id = client_id or uuid.uuid4().hex
        timeout = httpx.Timeout(
            settings.request_timeout_seconds, connect=settings.connect_timeout_seconds
        )
        self._http = httpx.Client(base_url=self.base_url, timeout=timeout, trust_env=False)
        self._hub = EventHub()
        self._reader: _SocketReader | None = None
        self._reader_lock = threading.Lock()
        self._graphs: dict[str, dict[str, Any]] = {}

    def __enter__(self) -> ComfyUIClient:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()

    def close(self) -> None:
        """Stop the socket thread and close the connections."""
        with self._reader_lock:
            reader, self._reader = self._reader, None
        if reader is not None:
            reader.stop()
        self._http.close()

    # --- state of the backend --------------------------------------------------------------------

    def system_stats(self) -> SystemStats:
        return parse_system_stats(self._get_json("/system_stats"))

    def is_reachable(self) -> bool:
        """Whether the backend answers ``/system_stats`` now."""
        try:
            self.system_stats()
        except ComfyUIError:
            return False
        return True

    def object_info(self) -> dict[str, Any]:
        """Every node's schema, as ``/object_info`` gives it (docs/comfyui.md#endpoints)."""
        return self._get_json("/object_info")

    def installed_models(self) -> InstalledModels:
        return installed_models_from_object_info(self.object_info())

    def queue_state(self) -> QueueState:
        return parse_queue(self._get_json("/queue"))

    # --- files -----------------------------------------------------------------------------------

    def upload(self, path: Path, name: str) -> str:
        """Upload a file into ComfyUI's input folder; returns the name to put in a graph.

        ``name`` should carry the job id. Trap (docs/comfyui.md#files): the answer's name may differ
        from the one sent (a clash with other bytes is stored as ``name (1).ext``), so only it is
        used, with its subfolder in front when there is one. ``overwrite`` stays false so we never
        replace a file another job's graph names.
        """
        try:
            file = path.open("rb")
        except OSError as exc:
            raise StorageError(f"cannot read {path} to upload it: {exc.strerror}") from exc
        with file:
            response = self._request(
                "POST",
                "/upload/image",
                files={"image": (name, file)},
                data={"overwrite": "false", "type": "input"},
            )
        body = self._json(self._expect_ok(response, "upload"))
        stored = str(body.get("name") or "")
        if not stored:
            raise ComfyUIError(f"ComfyUI at {self.base_url} accepted {name} but named no file")
        subfolder = str(body.get("subfolder") or "")
        return f"{subfolder}/{stored}" if subfolder else stored

    def download_video(self, result: PromptResult, dest_stem: Path) -> Path:
        """The first video a finished prompt wrote, saved as ``dest_stem`` plus the video's own
        extension (e.g. ``.mp4``); returns that path.

        Raises:
            ComfyUIError: the prompt wrote no video.
        """
        videos = [o for o in result.outputs if o.filename.lower().endswith(_VIDEO_SUFFIXES)]
        if not videos:
            raise ComfyUIError(f"ComfyUI finished prompt {result.prompt_id} but wrote no video")
        dest = dest_stem.with_name(dest_stem.name + Path(videos[0].filename).suffix.lower())
        self.download(videos[0], dest)
        return dest

    def download(self, output: OutputFile, dest: Path) -> None:
        """Stream one output file from ``/view`` into ``dest`` (the caller names it temporary)."""
        params = {"filename": output.filename, "subfolder": output.subfolder, "type": output.type}
        try:
            with self._http.stream("GET", "/view", params=params) as response:
                if response.status_code != httpx.codes.OK:
                    response.read()
                    self._expect_ok(response, f"download of {output.filename}")
                _write_stream(response.iter_bytes(_DOWNLOAD_CHUNK_BYTES), dest)
        except (httpx.HTTPError, OSError) as exc:
            raise self._unavailable(exc) from exc

    # --- prompts ---------------------------------------------------------------------------------

    def queue_prompt(self, graph: dict[str, Any], prompt_id: str) -> str:
        """Queue a graph under our own ``prompt_id`` (so a restarted worker can find it).

        Raises:
            ComfyUIRejected: the graph failed validation; the message names each node and input.
        """
        self._hub.register(prompt_id)  # before the POST: the first events may beat its answer
        self._start_socket()
        self._graphs[prompt_id] = graph
        body = {"prompt": graph, "client_id": self.client_id, "prompt_id": prompt_id}
        try:
            response = self._request("POST", "/prompt", json=body)
            return self._accept_queued(response, prompt_id)
        except ComfyUIError:
            self._hub.forget(prompt_id)
            self._graphs.pop(prompt_id, None)
            raise

    def _accept_queued(self, response: httpx.Response, prompt_id: str) -> str:
        if response.status_code == httpx.codes.BAD_REQUEST:
            raise ComfyUIRejected(describe_rejection(self._json(response)))
        if response.status_code != httpx.codes.OK:
            raise ComfyUIUnavailable(
                f"ComfyUI at {self.base_url} did not take the prompt: {response.status_code}"
            )
        answer = self._json(response)
        if answer.get("node_errors"):
            # A partly valid graph is queued without its bad outputs
            # (docs/comfyui.md#submitting-a-prompt); ours have one output each, so take it back (it
            # may already run) and report it rejected.
            self.cancel(prompt_id)
            raise ComfyUIRejected(describe_rejection(answer))
        return str(answer.get("prompt_id") or prompt_id)

    def follow(
        self, prompt_id: str, on_progress: ProgressCallback, should_cancel: CancelCheck
    ) -> PromptResult:
        """Wait until the prompt ends, reporting progress; returns its output files.

        Raises:
            ComfyUIExecutionError: a node failed (the message names it and the exception).
            ComfyUIInterrupted: cancelled through ``should_cancel``, or interrupted in ComfyUI.
            ComfyUIUnavailable: the backend went away or lost the prompt (retryable).
        """
        self._hub.register(prompt_id)
        try:
            self._start_socket()
            follower = self._follower(prompt_id, on_progress)
            return follower.run(should_cancel)
        finally:
            self._hub.forget(prompt_id)
            self._graphs.pop(prompt_id, None)

    def wait_for(
        self,
        prompt_id: str,
        on_progress: ProgressCallback,
        *,
        cancel: threading.Event,
        leave_running: threading.Event,
    ) -> PromptResult:
        """Follow a prompt to its end: stopped in ComfyUI when ``cancel`` is set or after
        ``promptTimeoutSeconds`` (a stalled GPU must not hold a job forever), left running there
        once ``leave_running`` is set (vidgen stops; the result is collected at the next start).

        Raises:
            JobCancelled: ``leave_running`` was set; the prompt goes on in ComfyUI.
            ComfyUIInterrupted: cancelled, or interrupted in ComfyUI.
            ComfyUIExecutionError: a node failed, or the prompt ran past the timeout.
            ComfyUIUnavailable: the backend went away or lost the prompt (retryable).
        """
        timeout_s = self.settings.prompt_timeout_seconds
        deadline = time.monotonic() + timeout_s
        timed_out = False

        def should_cancel() -> bool:
            nonlocal timed_out
            if leave_running.is_set():
                raise JobCancelled("vidgen is stopping")
            timed_out = time.monotonic() > deadline
            return timed_out or cancel.is_set()

        try:
            return self.follow(prompt_id, on_progress, should_cancel)
        except ComfyUIInterrupted as exc:
            if timed_out:
                raise ComfyUIExecutionError(
                    f"ComfyUI at {self.base_url} did not finish within {timeout_s:g} s "
                    "(comfyui.promptTimeoutSeconds); the prompt was stopped"
                ) from exc
            raise

    def _follower(self, prompt_id: str, on_progress: ProgressCallback) -> Follower:
        graph = self._graphs.get(prompt_id)
        if graph is not None:
            return Follower(
                self, self._hub, prompt_id, ProgressTracker(prompt_id, graph), on_progress
            )
        # A prompt this client did not queue (a restarted worker's): its events go to the socket
        # of the client id it was queued with, so unless that is ours, poll instead of waiting.
        graph, client_id = find_queued(self._get_json("/queue"), prompt_id)
        quiet_s = self.settings.quiet_socket_seconds
        if client_id != self.client_id:
            quiet_s = min(quiet_s, _FOREIGN_POLL_S)
        tracker = ProgressTracker(prompt_id, graph)
        return Follower(
            self, self._hub, prompt_id, tracker, on_progress, quiet_s=quiet_s, poll_now=True
        )

    def lookup(self, prompt_id: str) -> PromptLookup:
        """What ComfyUI knows of a prompt: pending, running, finished, failed or unknown.

        Trap: ``/history/{id}`` is ``{}`` for a prompt that is queued, running, unknown or evicted
        (docs/comfyui.md#traps), so ``/queue`` is asked first. ComfyUI moves a prompt from the queue
        into the history in one step, so one absent from both is unknown: lost in a restart, or
        never queued.
        """
        queue = self.queue_state()
        if queue.is_running(prompt_id):
            return PromptLookup(prompt_id, PromptState.RUNNING)
        if queue.is_pending(prompt_id):
            return PromptLookup(prompt_id, PromptState.PENDING)
        item = self._history_item(prompt_id)
        if item is None:
            return PromptLookup(prompt_id, PromptState.UNKNOWN)
        return parse_history_item(prompt_id, item)

    def cancel(self, prompt_id: str) -> None:
        """Stop our prompt wherever it is: take it off the queue, or interrupt it if it runs.

        Both requests name the prompt and do nothing to any other, so no check (which could race
        with ComfyUI starting it) is needed between them.
        """
        self.delete_queued([prompt_id])
        self.interrupt(prompt_id)

    def interrupt(self, prompt_id: str) -> None:
        """Interrupt ``prompt_id`` if it is the one running; otherwise nothing happens.

        Trap (docs/comfyui.md#traps): ``/interrupt`` without a prompt id stops whoever is running,
        maybe another client's prompt, so ours is always named.
        """
        self._expect_ok(
            self._request("POST", "/interrupt", json={"prompt_id": prompt_id}), "interrupt"
        )

    def delete_queued(self, prompt_ids: Iterable[str]) -> None:
        """Remove pending prompts from the queue (a running one stays: use ``interrupt``)."""
        body = {"delete": list(prompt_ids)}
        self._expect_ok(self._request("POST", "/queue", json=body), "queue delete")

    def await_history(self, prompt_id: str) -> PromptLookup:
        """The history of a prompt that just ended, asked again for ``history_retry_seconds``.

        Trap (docs/comfyui.md#traps): ``execution_success`` can arrive before ``/history/{id}`` has
        the outputs.
        """
        retrying = Retrying(
            stop=stop_after_delay(self.settings.history_retry_seconds),
            wait=wait_exponential(multiplier=0.05, max=1.0),
            retry=retry_if_result(lambda item: item is None or not item.get("outputs")),
            reraise=True,
        )
        try:
            item = retrying(self._history_item, prompt_id)
        except RetryError as exc:
            item = exc.last_attempt.result()
        if item is None:
            raise ComfyUIUnavailable(
                f"ComfyUI at {self.base_url} finished prompt {prompt_id} but its history has no "
                f"record of it after {self.settings.history_retry_seconds:g} s"
            )
        return parse_history_item(prompt_id, item)

    # --- internals -------------------------------------------------------------------------------

    def _start_socket(self) -> None:
        with self._reader_lock:
            if self._reader is not None:
                return
            ws_base = "ws" + self.base_url.removeprefix("http")  # http->ws, https->wss
            reader = _SocketReader(
                f"{ws_base}/ws?clientId={self.client_id}",
                self._hub,
                self.settings.connect_timeout_seconds,
            )
            reader.start()
            self._reader = reader
        # The socket must be open before the first prompt is queued, or its first events are
        # lost; if it will not open, follow() falls back to polling.
        if not self._hub.wait_connected(self.settings.connect_timeout_seconds):
            log.warning(
                "ComfyUI at %s: no WebSocket yet, following prompts by polling", self.base_url
            )

    def _history_item(self, prompt_id: str) -> dict[str, Any] | None:
        body = self._get_json(f"/history/{prompt_id}")
        item = body.get(prompt_id)
        return item if isinstance(item, dict) and item else None

    def _request(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        try:
            response = self._http.request(method, path, **kwargs)
        except (httpx.HTTPError, OSError) as exc:
            raise self._unavailable(exc) from exc
        if response.status_code >= httpx.codes.INTERNAL_SERVER_ERROR:
            raise ComfyUIUnavailable(
                f"ComfyUI at {self.base_url} answered {method} {path} with {response.status_code}"
            )
        return response

    def _get_json(self, path: str) -> dict[str, Any]:
        return self._json(self._expect_ok(self._request("GET", path), f"GET {path}"))

    def _expect_ok(self, response: httpx.Response, what: str) -> httpx.Response:
        if response.status_code != httpx.codes.OK:
            raise ComfyUIError(
                f"ComfyUI at {self.base_url} refused the {what} with {response.status_code}"
            )
        return response

    def _json(self, response: httpx.Response) -> dict[str, Any]:
        try:
            body = response.json()
        except ValueError as exc:
            raise ComfyUIUnavailable(
                f"ComfyUI at {self.base_url} answered with something that is not JSON"
            ) from exc
        if not isinstance(body, dict):
            raise ComfyUIUnavailable(
                f"ComfyUI at {self.base_url} answered with {type(body).__name__}"
            )
        return body

    def _unavailable(self, exc: Exception) -> ComfyUIUnavailable:
        reason = str(exc) or type(exc).__name__
        return ComfyUIUnavailable(f"ComfyUI at {self.base_url} is unreachable: {reason}")


def _write_stream(chunks: Iterable[bytes], dest: Path) -> None:
    """Write downloaded bytes; a local failure is a storage problem, not ComfyUI's."""
    try:
        file: IO[bytes] = dest.open("wb")
    except OSError as exc:
        raise StorageError(f"cannot write {dest}: {exc.strerror}") from exc
    with file:
        for chunk in chunks:
            try:
                file.write(chunk)
            except OSError as exc:
                raise StorageError(f"cannot write {dest}: {exc.strerror}") from exc
