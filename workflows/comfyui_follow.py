"""Following one prompt: socket events filed per prompt, and the loop that waits for its end.

``EventHub`` is filled by the client's socket thread and drained by ``Follower``, which turns
events into progress and falls back to ``/queue`` + ``/history`` (through the client) whenever the
socket drops, comes back, or stays quiet: the socket is advisory, the server's state is the truth
(docs/comfyui.md#traps). Only ``workflows.comfyui_client`` uses this module.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections import deque
from collections.abc import Callable
from typing import Any, Protocol

from vidgen.config import ComfyUISettings
from vidgen.errors import ComfyUIInterrupted, ComfyUIUnavailable
from workflows.comfyui_types import (
    PromptLookup,
    PromptProgress,
    PromptResult,
    PromptState,
    execution_error,
    interrupted_error,
)
from workflows.progress import ProgressTracker

log = logging.getLogger(__name__)

# should_cancel may ask the database, so it is asked at most this often: cancelling within a
# second is quick enough for a person (docs/architecture.md: a cancel stops the GPU within seconds).
CANCEL_CHECK_S = 0.5
# After /queue and /history both forget a prompt, ask again this often for history_retry_seconds.
UNKNOWN_RECHECK_S = 0.2
_MAX_BUFFERED_EVENTS = 100_000

ProgressCallback = Callable[[PromptProgress], None]
CancelCheck = Callable[[], bool]


class PromptServer(Protocol):
    """What a follower asks of the client."""

    base_url: str
    settings: ComfyUISettings

    def lookup(self, prompt_id: str) -> PromptLookup: ...

    def await_history(self, prompt_id: str) -> PromptLookup: ...

    def cancel(self, prompt_id: str) -> None: ...


class EventHub:
    """Per-prompt buffers of socket events, filled by the reader thread, drained by ``follow``."""

    def __init__(self) -> None:
        self._changed = threading.Condition()
        self._buffers: dict[str, deque[dict[str, Any]]] = {}
        self.epoch = 0  # bumped on every connect and disconnect: a reason to poll
        self.connected = False

    def register(self, prompt_id: str) -> None:
        with self._changed:
            # Bounded: a prompt queued ahead and then never followed (its job was cancelled)
            # must not grow without end; a prompt sends far fewer events than this.
            self._buffers.setdefault(prompt_id, deque(maxlen=_MAX_BUFFERED_EVENTS))

    def forget(self, prompt_id: str) -> None:
        with self._changed:
            self._buffers.pop(prompt_id, None)

    def set_connected(self, connected: bool) -> None:
        with self._changed:
            self.connected = connected
            self.epoch += 1
            self._changed.notify_all()

    def dispatch(self, text: str) -> None:
        """File one text frame under its prompt; other clients' prompts are not ours to keep."""
        try:
            message = json.loads(text)
        except ValueError:
            log.debug("ComfyUI sent a text frame that is not JSON: %.80r", text)
            return
        data = message.get("data") if isinstance(message, dict) else None
        prompt_id = data.get("prompt_id") if isinstance(data, dict) else None
        with self._changed:
            buffer = self._buffers.get(prompt_id) if isinstance(prompt_id, str) else None
            if buffer is not None:
                buffer.append(message)
                self._changed.notify_all()

    def next_event(self, prompt_id: str, epoch: int, timeout_s: float) -> dict[str, Any] | None:
        """The prompt's next event, or None after ``timeout_s`` or once the socket changed."""
        with self._changed:
            buffer = self._buffers.setdefault(prompt_id, deque(maxlen=_MAX_BUFFERED_EVENTS))
            self._changed.wait_for(lambda: bool(buffer) or self.epoch != epoch, timeout_s)
            return buffer.popleft() if buffer else None

    def wait_connected(self, timeout_s: float) -> bool:
        with self._changed:
            return self._changed.wait_for(lambda: self.connected, timeout_s)


class Follower:
    """The state of one ``follow`` call: events in, progress out, polls when the socket fails us."""

    def __init__(
        self,
        client: PromptServer,
        hub: EventHub,
        prompt_id: str,
        tracker: ProgressTracker,
        on_progress: ProgressCallback,
        *,
        quiet_s: float | None = None,
        poll_now: bool = False,
    ) -> None:
        self._client = client
        self._prompt_id = prompt_id
        self._tracker = tracker
        self._on_progress = on_progress
        self._quiet_s = client.settings.quiet_socket_seconds if quiet_s is None else quiet_s
        self._hub = hub
        self._epoch = hub.epoch
        self._poll_at = time.monotonic() + (0.0 if poll_now else self._quiet_s)
        self._unknown_since: float | None = None
        self._cancel_checked_at = float("-inf")

    def run(self, should_cancel: CancelCheck) -> PromptResult:
        while True:
            self._check_cancel(should_cancel)
            now = time.monotonic()
            wait_s = max(0.0, min(self._poll_at - now, CANCEL_CHECK_S))
            event = self._hub.next_event(self._prompt_id, self._epoch, wait_s)
            result = self._on_event(event) if event is not None else None
            if result is None:
                result = self._poll_if_due()
            if result is not None:
                self._on_progress(self._tracker.finished())
                return result

    def _check_cancel(self, should_cancel: CancelCheck) -> None:
        now = time.monotonic()
        if now - self._cancel_checked_at < CANCEL_CHECK_S:
            return
        self._cancel_checked_at = now
        if should_cancel():
            self._client.cancel(self._prompt_id)
            raise ComfyUIInterrupted(f"prompt {self._prompt_id} was cancelled")

    def _on_event(self, event: dict[str, Any]) -> PromptResult | None:
        kind, data = event.get("type"), event.get("data") or {}
        self._poll_at = time.monotonic() + self._quiet_s  # the socket speaks: no poll needed yet
        if kind == "execution_success":
            return self._finished(self._client.await_history(self._prompt_id))
        if kind == "execution_error":
            raise execution_error(data)
        if kind == "execution_interrupted":
            raise interrupted_error(data)
        if kind == "executing" and data.get("node") is None:
            # The last message of every prompt: if the outcome was missed, the server knows it.
            self._poll_at = time.monotonic()
        progress = self._tracker.update(str(kind), data)
        if progress is not None:
            self._on_progress(progress)
        return None

    def _poll_if_due(self) -> PromptResult | None:
        hub = self._hub
        if hub.epoch != self._epoch:
            # Trap: the socket dropped or came back, so events may be missing
            # (docs/comfyui.md#traps: "a quiet socket triggers a poll, never a hang").
            self._epoch = hub.epoch
            self._poll_at = time.monotonic()
        if time.monotonic() < self._poll_at:
            return None
        return self._poll()

    def _poll(self) -> PromptResult | None:
        lookup = self._client.lookup(self._prompt_id)
        now = time.monotonic()
        if lookup.state is PromptState.UNKNOWN:
            self._unknown(now)
            return None
        self._unknown_since = None
        self._poll_at = now + self._quiet_s
        if lookup.state in (PromptState.PENDING, PromptState.RUNNING):
            return None
        return self._finished(lookup)

    def _unknown(self, now: float) -> None:
        # Trap: gone from /queue and /history means ComfyUI restarted and lost it, but the
        # history can lag a moment behind, so it is asked again for history_retry_seconds.
        self._unknown_since = self._unknown_since if self._unknown_since is not None else now
        if now - self._unknown_since >= self._client.settings.history_retry_seconds:
            raise ComfyUIUnavailable(
                f"ComfyUI at {self._client.base_url} no longer knows prompt {self._prompt_id}: "
                "it was probably restarted; the prompt will be queued again"
            )
        self._poll_at = now + UNKNOWN_RECHECK_S

    def _finished(self, lookup: PromptLookup) -> PromptResult:
        if lookup.error is not None:
            raise lookup.error
        if lookup.result is None:
            raise ComfyUIUnavailable(f"ComfyUI has no result for prompt {self._prompt_id}")
        return lookup.result
