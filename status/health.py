"""``GET /health``: can vidgen work? The database, each ComfyUI backend, ffmpeg, the folders.

200 while vidgen can work (a missing ComfyUI or ffmpeg is reported, not fatal: jobs wait or fail
with a message), 503 when the database or storage (the storage folder or an outbox) is
unusable, or when an intake that was running has stopped beating (its thread died or hangs:
``service_status``, written by every watcher on any host). Folders are named by their last
component, never by their full path.

ComfyUI is asked through the ComfyUI client (``/system_stats`` and ``/queue``), one probe per
backend; ``create_app`` takes other probes for tests or special set-ups.
"""

from __future__ import annotations

import os
import shutil
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Protocol

from flask import Blueprint, Response, jsonify

from status.context import status_context
from vidgen.config import ComfyUISettings, Settings
from vidgen.db.delivery_state import target_states
from vidgen.db.service_status import service_states
from vidgen.db.session import Database
from vidgen.db.types import utcnow
from vidgen.errors import VidgenError
from vidgen.ffmpeg import ffmpeg_version
from vidgen.holds import current_holds
from vidgen.notifications.targets import targets_of
from workflows.comfyui_client import ComfyUIClient

bp = Blueprint("health", __name__)

FFMPEG_CACHE_SECONDS = 60.0


@dataclass(frozen=True, slots=True)
class BackendHealth:
    """What one ComfyUI backend said (or that it did not answer)."""

    url: str
    reachable: bool
    queue_length: int | None = None
    vram_free_bytes: int | None = None
    vram_total_bytes: int | None = None
    error: str | None = None


BackendProbe = Callable[[], BackendHealth]


class _Device(Protocol):
    @property
    def vram_free(self) -> int: ...
    @property
    def vram_total(self) -> int: ...


class _Stats(Protocol):
    @property
    def devices(self) -> Sequence[_Device]: ...


class _Queue(Protocol):
    @property
    def running(self) -> Sequence[object]: ...
    @property
    def pending(self) -> Sequence[object]: ...


def backend_probe(
    url: str, system_stats: Callable[[], _Stats], queue_state: Callable[[], _Queue]
) -> BackendProbe:
    """A probe from a ComfyUI client's ``system_stats`` and ``queue_state`` methods."""

    def probe() -> BackendHealth:
        try:
            stats = system_stats()
            queue = queue_state()
        except VidgenError as exc:
            return BackendHealth(url, reachable=False, error=exc.user_message)
        return BackendHealth(
            url,
            reachable=True,
            queue_length=len(queue.running) + len(queue.pending),
            vram_free_bytes=sum(d.vram_free for d in stats.devices),
            vram_total_bytes=sum(d.vram_total for d in stats.devices),
        )

    return probe


def comfyui_probes(settings: ComfyUISettings) -> list[BackendProbe]:
    """One probe per configured backend, each asking through a short-lived ComfyUI client."""

    def probe_of(url: str) -> BackendProbe:
        def probe() -> BackendHealth:
            with ComfyUIClient(url, settings) as client:
                return backend_probe(url, client.system_stats, client.queue_state)()

        return probe

    return [probe_of(url) for url in settings.urls]


class FFmpegVersion:
    """ffmpeg's version, asked at most once a minute (it starts a process)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._value: dict[str, Any] = {}
        self._checked = -FFMPEG_CACHE_SECONDS

    def get(self) -> dict[str, Any]:
        with self._lock:
            if time.monotonic() - self._checked >= FFMPEG_CACHE_SECONDS:
                try:
                    self._value = {"ok": True, "version": ffmpeg_version()}
                except VidgenError as exc:
                    self._value = {"ok": False, "error": exc.user_message}
                self._checked = time.monotonic()
            return dict(self._value)


def _database(database: Database) -> dict[str, Any]:
    try:
        database.ping()
    except VidgenError:
        return {"ok": False, "error": "the database does not answer"}
    return {"ok": True}


def _intake(database: Database) -> dict[str, Any]:
    """Each running intake (by host) and whether it still beats; ok unless one went silent."""
    try:
        states = service_states(database, "intake")
    except VidgenError:
        return {"ok": False, "error": "the database does not answer"}
    now = utcnow()
    watchers = [
        {
            "host": state.host,
            "alive": state.alive(now),
            "silentSeconds": round(state.silent_seconds(now), 1),
        }
        for state in states
    ]
    return {"ok": all(w["alive"] for w in watchers), "watchers": watchers}


def folder_state(path: Path, *, need_write: bool) -> dict[str, Any]:
    readable = path.is_dir() and os.access(path, os.R_OK | os.X_OK)
    writable = readable and os.access(path, os.W_OK)
    entry: dict[str, Any] = {"name": path.name, "readable": readable, "writable": writable}
    if need_write:
        entry["ok"] = writable
    if readable:
        entry["freeBytes"] = shutil.disk_usage(path).free
    return entry


def _backend(probe: BackendProbe) -> dict[str, Any]:
    result = asdict(probe())
    return {
        "url": result["url"],
        "reachable": result["reachable"],
        "queueLength": result["queue_length"],
        "vramFreeBytes": result["vram_free_bytes"],
        "vramTotalBytes": result["vram_total_bytes"],
        "error": result["error"],
    }


def check_health(
    settings: Settings, database: Database, probes: Sequence[BackendProbe], ffmpeg: FFmpegVersion
) -> tuple[dict[str, Any], bool]:
    """The health report, and whether vidgen can work (database and storage usable)."""
    storage = folder_state(settings.storage, need_write=True)
    outboxes = [folder_state(p, need_write=True) for p in dict.fromkeys(settings.all_outboxes)]
    report: dict[str, Any] = {
        "database": _database(database),
        "comfyui": [_backend(probe) for probe in probes],
        "ffmpeg": ffmpeg.get(),
        "inboxes": [folder_state(i.path, need_write=True) for i in settings.inboxes],
        "storage": storage,
        "outboxes": outboxes,
        "notifications": notification_targets(settings, database),
        "intake": _intake(database),
        "holds": _holds(settings, database),
    }
    usable = report["database"]["ok"] and storage["ok"] and all(o["ok"] for o in outboxes)
    usable = usable and report["intake"]["ok"]
    report["status"] = "unavailable" if not usable else _degraded(report) or "ok"
    return report, usable


def _holds(settings: Settings, database: Database) -> dict[str, Any]:
    """A PAUSE file and the GPU hours: vidgen is healthy while they hold work back."""
    holds = current_holds(settings, database)
    opening = holds.gpu_hours.next_opening(holds.now)
    return {
        "paused": bool(holds.paused_by),
        "pausedBy": list(holds.paused_by),
        "gpuHours": list(settings.schedule.gpu_hours),
        "gpuOpen": holds.gpu_open,
        "nextWindowAt": opening.isoformat() if opening else None,
        "messages": holds.lines(),
    }


def notification_targets(settings: Settings, database: Database) -> list[dict[str, Any]]:
    """Each webhook and Apprise target with how its newest try went: a failing one is shown
    here and logged, and never makes vidgen unavailable."""
    targets = targets_of(settings.notifications)
    try:
        states = target_states(database, [t.key for t in targets])
    except VidgenError:
        return [{"target": t.name, "where": t.where, "ok": None} for t in targets]
    entries = []
    for target in targets:
        state = states[target.key]
        delivered = state.last_delivered_at
        entries.append(
            {
                "target": target.name,
                "where": target.where,
                "events": sorted(target.events),
                "ok": state.last_ok is not False,
                "waiting": state.waiting,
                "givenUp": state.given_up,
                "lastError": state.last_error,
                "lastDeliveredAt": delivered.isoformat() if delivered else None,
            }
        )
    return entries


def _degraded(report: dict[str, Any]) -> str | None:
    """``degraded`` when vidgen works but not fully: no ComfyUI, no ffmpeg, an inbox away."""
    troubles = (
        not all(b["reachable"] for b in report["comfyui"])
        or not report["ffmpeg"]["ok"]
        or not all(i["ok"] for i in report["inboxes"])
    )
    return "degraded" if troubles else None


@bp.get("/health")
def health() -> tuple[Response, int]:
    context = status_context()
    report, usable = check_health(
        context.settings, context.database, context.backend_probes, context.ffmpeg
    )
    response = jsonify(report)
    response.headers["Cache-Control"] = "no-store"
    return response, 200 if usable else 503
