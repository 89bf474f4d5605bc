"""Why workers take no new job now: a ``PAUSE`` file at the top of an inbox (seen by this host,
or reported by the watcher of another), or, for ComfyUI work, a time outside
``schedule.gpuHours``. Running work is never stopped by either; only claiming waits.

Workers ask before each claim; the status page, ``/health`` and ``vidgen jobs`` show the same
``Holds``.
"""

from __future__ import annotations

import logging
import os
import stat
from dataclasses import dataclass
from datetime import datetime, time, timedelta
from pathlib import Path

from vidgen.config import Settings
from vidgen.db.models import RunsOn
from vidgen.db.service_status import service_states
from vidgen.db.session import Database
from vidgen.db.types import utcnow
from vidgen.errors import DatabaseUnavailable

log = logging.getLogger(__name__)

PAUSE_FILE = "PAUSE"
_INTAKE = "intake"  # the service_status part the watchers beat as (watcher.liveness)


def pause_file_present(inbox: Path) -> bool:
    """A ``PAUSE`` entry of any kind but a folder at the top of ``inbox`` (never followed)."""
    try:
        return not stat.S_ISDIR(os.lstat(inbox / PAUSE_FILE).st_mode)
    except OSError:
        return False


@dataclass(frozen=True, slots=True)
class Window:
    """``22:00-07:00``: from the first time up to the second, across midnight when it is
    earlier; equal times mean the whole day."""

    start: time
    end: time

    @classmethod
    def parse(cls, text: str) -> Window:
        first, second = text.split("-")
        return cls(time.fromisoformat(first), time.fromisoformat(second))

    def contains(self, moment: time) -> bool:
        if self.start == self.end:
            return True
        if self.start < self.end:
            return self.start <= moment < self.end
        return moment >= self.start or moment < self.end

    def __str__(self) -> str:
        return f"{self.start:%H:%M}\u2013{self.end:%H:%M}"  # an en dash, as written in prose


@dataclass(frozen=True, slots=True)
class GpuHours:
    """When ComfyUI jobs are claimed, in local time; no windows means always."""

    windows: tuple[Window, ...] = ()

    @classmethod
    def from_settings(cls, settings: Settings) -> GpuHours:
        return cls(tuple(Window.parse(text) for text in settings.schedule.gpu_hours))

    def open_at(self, now: datetime) -> bool:
        moment = now.time()
        return not self.windows or any(w.contains(moment) for w in self.windows)

    def next_opening(self, now: datetime) -> datetime | None:
        """When the next window starts (None when one is open now, or none is set)."""
        if self.open_at(now):
            return None
        starts = []
        for window in self.windows:
            start = now.replace(
                hour=window.start.hour, minute=window.start.minute, second=0, microsecond=0
            )
            starts.append(start if start > now else start + timedelta(days=1))
        return min(starts)

    def __str__(self) -> str:
        return "GPU hours " + ", ".join(str(w) for w in self.windows)


@dataclass(frozen=True, slots=True)
class Holds:
    """What holds claiming back at one moment."""

    paused_by: tuple[str, ...]  # "inbox/PAUSE", one per inbox holding the file
    gpu_hours: GpuHours
    now: datetime  # local, aware

    @property
    def gpu_open(self) -> bool:
        return self.gpu_hours.open_at(self.now)

    def reason(self, runs_on: RunsOn) -> str | None:
        """Why a worker of this kind claims nothing now (its queued jobs show it), or None."""
        if self.paused_by:
            return f"waiting: paused by {', '.join(self.paused_by)}"
        if runs_on is RunsOn.COMFYUI and not self.gpu_open:
            return f"waiting for {self.gpu_hours}, {self.next_window_text()}"
        return None

    def next_window_text(self) -> str:
        opening = self.gpu_hours.next_opening(self.now)
        if opening is None:
            return "in a window now"
        return f"next window in {_duration(opening - self.now)}"

    def lines(self) -> list[str]:
        """What the status page, ``/health`` and ``vidgen jobs`` say, one line each."""
        lines = []
        if self.paused_by:
            lines.append(
                f"paused by {', '.join(self.paused_by)}: no new job is started "
                "(running ones finish); remove the file to resume"
            )
        if self.gpu_hours.windows:
            state = "ComfyUI jobs run now" if self.gpu_open else self.next_window_text()
            lines.append(f"{self.gpu_hours}: {state}; FFmpeg-only work runs any time")
        return lines


def current_holds(settings: Settings, database: Database, now: datetime | None = None) -> Holds:
    """The holds as this host sees them: its own inboxes' ``PAUSE`` files and what the live
    watchers of every host report (when the database answers)."""
    paused = [f"{i.path.name}/{PAUSE_FILE}" for i in settings.inboxes if pause_file_present(i.path)]
    try:
        states = service_states(database, _INTAKE)
    except DatabaseUnavailable as exc:
        log.debug("other hosts' pauses not read: %s", exc)
        states = []
    seen_at = utcnow()
    for state in states:
        if state.alive(seen_at):
            paused += [
                f"{inbox.get('name')}/{PAUSE_FILE}"
                for inbox in state.details.get("inboxes", ())
                if inbox.get("paused")
            ]
    local_now = now or datetime.now().astimezone()
    return Holds(tuple(dict.fromkeys(paused)), GpuHours.from_settings(settings), local_now)


def _duration(span: timedelta) -> str:
    minutes = max(1, round(span.total_seconds() / 60))
    hours, minutes = divmod(minutes, 60)
    if not hours:
        return f"{minutes} min"
    return f"{hours} h" if not minutes else f"{hours} h {minutes} min"
