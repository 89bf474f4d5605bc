"""The lease keeper of a worker: renews the leases of the jobs it holds, and brings it a user's
cancel, or the news that a job was taken from it, within about a second."""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass, field

from vidgen.config import Settings
from vidgen.db import jobs
from vidgen.db.jobs import LeaseState
from vidgen.db.session import Database
from vidgen.errors import DatabaseUnavailable

log = logging.getLogger(__name__)

# How often the state of held jobs is read between lease renewals: a cancel reaches ComfyUI or
# ffmpeg within about this long, however long the lease round.
_CANCEL_POLL_SECONDS = 1.0


@dataclass(frozen=True, slots=True)
class HeldJob:
    """The events of a job a worker holds (see ``JobContext``)."""

    cancel: threading.Event = field(default_factory=threading.Event)
    leave: threading.Event = field(default_factory=threading.Event)

    def let_go(self) -> None:
        self.leave.set()
        self.cancel.set()


class LeaseKeeper:
    """Renews the leases of the jobs a worker holds every ``leaseRenewSeconds``, and reads their
    state every ``_CANCEL_POLL_SECONDS`` in between, so that a user's cancel stops the job (and
    its prompt in ComfyUI) within about a second; a job taken from us is let go."""

    def __init__(self, database: Database, settings: Settings, worker_id: str) -> None:
        self._database = database
        self._settings = settings
        self._worker_id = worker_id
        self._held: dict[str, HeldJob] = {}
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name=f"lease-{worker_id}", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=10)

    def hold(self, job_id: str) -> HeldJob:
        with self._lock:
            return self._held.setdefault(job_id, HeldJob())

    def held(self) -> list[str]:
        with self._lock:
            return list(self._held)

    def let_go_all(self) -> None:
        """Shutdown: every job stops, its prompts left running in ComfyUI."""
        with self._lock:
            for held in self._held.values():
                held.let_go()

    def drop(self, job_id: str) -> None:
        with self._lock:
            self._held.pop(job_id, None)

    def _loop(self) -> None:
        renew_seconds = self._settings.jobs.lease_renew_seconds
        renew_at = time.monotonic() + renew_seconds
        while not self._stop.wait(min(_CANCEL_POLL_SECONDS, renew_seconds)):
            with self._lock:
                held = dict(self._held)
            if not held:
                continue
            try:
                if time.monotonic() >= renew_at:
                    renew_at = time.monotonic() + renew_seconds
                    self._renew(held)
                states = jobs.lease_states(self._database, list(held), self._worker_id)
            except DatabaseUnavailable as exc:
                log.warning("could not renew or read the leases of %s: %s", list(held), exc)
                continue
            for job_id, state in states.items():
                if state is LeaseState.CANCEL_REQUESTED:
                    held[job_id].cancel.set()
                elif state is LeaseState.LOST:
                    held[job_id].let_go()

    def _renew(self, held: dict[str, HeldJob]) -> None:
        for job_id in held:
            jobs.renew_lease(
                self._database, job_id, self._worker_id, self._settings.jobs.lease_seconds
            )
