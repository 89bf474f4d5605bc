"""Intake saying it is alive: a ``service_status`` row written from the intake thread's own
loop every ``intake.heartbeatSeconds``, so a thread that died (or hangs) stops beating and
``/health`` on any host reports it (503)."""

from __future__ import annotations

import logging
import os
import socket
import time
import uuid
from datetime import timedelta
from typing import Any

from vidgen.config import Settings
from vidgen.db import heartbeats
from vidgen.db.service_status import SILENT_BEATS
from vidgen.db.session import Database
from vidgen.db.types import utcnow
from vidgen.errors import DatabaseUnavailable

log = logging.getLogger(__name__)

PART = "intake"


class Liveness:
    """The heartbeat of one watcher; ``beat`` is cheap to call often (it writes when due)."""

    def __init__(self, settings: Settings, database: Database) -> None:
        self.database = database
        self.interval = settings.intake.heartbeat_seconds
        self.state_id = str(uuid.uuid4())
        self.host = socket.gethostname()
        self.started_at = utcnow()
        self._next = 0.0
        self._last_inboxes: list[dict[str, Any]] = []

    def start(self, inboxes: list[dict[str, Any]]) -> None:
        """Clear what a killed watcher of this host left (it would read as dead), then beat
        once, so an intake thread that dies before its first turn is missed too."""
        silent = timedelta(seconds=SILENT_BEATS * self.interval)
        try:
            heartbeats.forget_silent(self.database, PART, self.host, silent)
        except DatabaseUnavailable as exc:
            log.debug("old heartbeats not cleared: %s", exc)
        self.beat(inboxes)

    def beat(self, inboxes: list[dict[str, Any]]) -> None:
        """Write when due, or at once when an inbox changed (a PAUSE file came or went)."""
        now = time.monotonic()
        if now < self._next and inboxes == self._last_inboxes:
            return
        self._next = now + self.interval
        self._last_inboxes = inboxes
        details = {"pid": os.getpid(), "heartbeatSeconds": self.interval, "inboxes": inboxes}
        try:
            heartbeats.beat(
                self.database,
                self.state_id,
                part=PART,
                host=self.host,
                started_at=self.started_at,
                details=details,
            )
        except DatabaseUnavailable as exc:  # said by intake's own retries; beat again later
            log.debug("heartbeat not written: %s", exc)

    def stop(self) -> None:
        try:
            heartbeats.forget(self.database, self.state_id)
        except DatabaseUnavailable as exc:
            log.debug("heartbeat not removed: %s", exc)
