"""What no single transaction causes, noticed by the notifier's thread: the queue running empty,
and attention episodes (a backend that does not answer, or a disk under ``minFreeBytes``, for
longer than ``notifications.attentionAfterSeconds``).

Each is stored once however many processes watch (``outbox.record_once`` with a key): the queue
by the job that ended last, an episode by its subject while it lasts.
"""

from __future__ import annotations

import hashlib
import logging
import shutil
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

from vidgen.config import Settings
from vidgen.db import outbox
from vidgen.db.models import EventKind
from vidgen.db.session import Database
from vidgen.db.types import utcnow

log = logging.getLogger(__name__)

# A job that ended longer ago than this makes no queueEmpty at start (it was long noticed, or
# notifications were configured since).
STALE = timedelta(days=1)


@dataclass(frozen=True, slots=True)
class _Reading:
    subject: str  # what it is about, stable: the episode's key is made of it
    trouble: str | None  # what is wrong, in words; None when all is well


class Monitor:
    """Checked once per notifier round; ``kinds`` are the event kinds some target wants."""

    def __init__(
        self,
        settings: Settings,
        database: Database,
        backends: Mapping[str, Callable[[], bool]],
        kinds: frozenset[str],
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._settings = settings
        self._database = database
        self._backends = backends
        self._kinds = kinds
        self._clock = clock
        self._drained: str | None = None  # the last queue key tried
        self._bad_since: dict[str, float] = {}
        self._episodes: dict[str, bool] = {}  # subject → open, as far as this process knows

    def check(self) -> None:
        if EventKind.QUEUE_EMPTY in self._kinds:
            self._queue()
        if EventKind.ATTENTION in self._kinds:
            for reading in self._readings():
                self._attention(reading)

    def _queue(self) -> None:
        drained = outbox.drained_after(self._database)
        if drained is None or drained[0] == self._drained:
            return
        self._drained = drained[0]
        if drained[1] < utcnow() - STALE:
            return
        key = f"queueEmpty:{drained[0]}"
        if outbox.record_once(self._database, EventKind.QUEUE_EMPTY, key, outbox.event_payload()):
            log.info("the queue is empty")

    def _readings(self) -> Iterator[_Reading]:
        for url, reachable in self._backends.items():
            yield _Reading(f"ComfyUI at {url}", None if reachable() else "does not answer")
        folders = {"storage": self._settings.storage} | {
            f"outbox {p.name}": p for p in self._settings.all_outboxes
        }
        for label, folder in folders.items():
            yield _Reading(f"the disk of {label}", self._disk_trouble(folder))

    def _disk_trouble(self, folder: Path) -> str | None:
        limit = self._settings.min_free_bytes
        try:
            free = shutil.disk_usage(folder).free
        except OSError as exc:
            return f"cannot be read ({exc.strerror or exc})"
        if free >= limit:
            return None
        return f"has {free / 1e9:.2f} GB free, under minFreeBytes ({limit / 1e9:.2f} GB)"

    def _attention(self, reading: _Reading) -> None:
        key = "attention:" + hashlib.sha256(reading.subject.encode()).hexdigest()[:32]
        if reading.trouble is None:
            self._bad_since.pop(reading.subject, None)
            if self._episodes.get(reading.subject, True):  # open, or unknown since our start
                outbox.close_episode(self._database, key)
                self._episodes[reading.subject] = False
            return
        now = self._clock()
        since = self._bad_since.setdefault(reading.subject, now)
        waited = self._settings.notifications.attention_after_seconds
        if now - since < waited or self._episodes.get(reading.subject):
            return
        message = f"{reading.subject} {reading.trouble} (for {now - since:.0f} s)"
        payload = outbox.event_payload(error=message)
        if outbox.record_once(self._database, EventKind.ATTENTION, key, payload):
            log.warning("attention: %s", message)
        self._episodes[reading.subject] = True
