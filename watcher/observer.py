"""Watching the inboxes: watchdog observers say which names changed, one thread decides when a
file is complete and hands it to ``Intake`` on a small pool (``intake.workers``), so that one
manifest's database round trips overlap another's parsing.

Events are hints (docs/intake-notes.md). Locally a closed write (``FileClosedEvent``) means
complete; a file that arrives by rename or over a share (no close event; PollingObserver never sends
one) must keep its size and mtime for the inbox's ``stableSeconds``. A full rescan at start and
every ``rescanSeconds`` catches what events missed, and notices an inbox that went away (an outage:
logged once, nothing destructive done, the wait for missing files paused) or came back. A claimed
manifest that met a passing failure (the database away, a full disk) is resumed with backoff.
The intake thread records that it is alive (``watcher.liveness``); ``ensure_running`` starts it
again should it ever die.
"""

from __future__ import annotations

import logging
import os
import queue
import stat
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from watchdog.observers import Observer
from watchdog.observers.api import BaseObserver
from watchdog.observers.polling import PollingObserver

from vidgen.config import InboxSettings, Settings
from vidgen.holds import pause_file_present
from vidgen.safe_files import shown_name
from watcher.events import EVENTS, Events, Handler, Kind
from watcher.files import forget_folders, processing_dir
from watcher.inboxes import InboxState, Presence, WatcherStatus, top_level_names
from watcher.intake import Intake, IntakeResult, Outcome
from watcher.liveness import Liveness

log = logging.getLogger(__name__)

_WAITING_RETRY_SECONDS = 0.25
_IDLE_WAKE_SECONDS = 0.5
_LOOP_FAILURE_PAUSE_SECONDS = 1.0


@dataclass
class _Pending:
    """A manifest seen but not yet taken: what intake knows of its completeness."""

    inbox: InboxSettings
    due: float  # monotonic time of the next look
    signature: tuple[int, int] | None = None  # (size, mtime_ns) at the last look
    writing: bool = False  # a local writer has it open: wait for its close
    ready: bool = False
    last_event: float = field(default_factory=time.monotonic)
    failures: int = 0  # looks that failed in a row (backoff)


@dataclass(frozen=True, slots=True)
class _Flight:
    """A path a pool thread holds: the pending entry it took (None: a claimed file resumed)."""

    future: Future[IntakeResult]
    pending: _Pending | None
    attempt: int = 0


class Watcher:
    """Observers on every inbox and the one intake thread; ``start()``/``stop()``."""

    def __init__(self, settings: Settings, intake: Intake) -> None:
        self.settings = settings
        self.intake = intake
        self._events: Events = queue.SimpleQueue()
        self._handlers = {i.path: Handler(i, self._events) for i in settings.inboxes}
        self._presence = {i.path: Presence(i.path) for i in settings.inboxes}
        self._observers: dict[Path, BaseObserver] = {}
        self._states = {i.path: InboxState(i.path, i.polling, True) for i in settings.inboxes}
        self._pending: dict[Path, _Pending] = {}
        self._retries: dict[Path, tuple[float, int]] = {}  # claimed file → (due, attempt)
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread = self._intake_thread()
        self._pool = ThreadPoolExecutor(
            max_workers=settings.intake.workers, thread_name_prefix="vidgen-intake"
        )
        self._in_flight: dict[Path, _Flight] = {}
        self._in_flight_limit = 2 * settings.intake.workers  # enough to keep every thread busy
        self._next_rescan = 0.0
        self._liveness = Liveness(settings, intake.database)

    def start(self) -> None:
        """Recover what a crash left, watch every inbox, rescan, then follow events."""
        for inbox in self.settings.inboxes:
            if self._presence[inbox.path].away() is None:
                self._observe(inbox)
        described = "; ".join(
            f"{i.path} ({'polling' if i.polling else 'inotify'})" for i in self.settings.inboxes
        )
        log.info("watching %d inbox(es): %s", len(self.settings.inboxes), described)
        self._liveness.start(self._inbox_details())
        self._thread.start()

    def stop(self) -> None:
        """Stop observing; the file being taken is finished first. Threads are joined."""
        self._stop.set()
        for path in list(self._observers):
            self._unobserve(path)
        if self._thread.is_alive():
            self._thread.join()
        self._pool.shutdown(wait=True)
        self._liveness.stop()

    def ensure_running(self) -> bool:
        """Start the intake thread again if it died; True when it had to."""
        if self._stop.is_set() or self._thread.is_alive():
            return False
        log.error("the intake thread stopped; starting it again")
        self._thread = self._intake_thread()
        self._thread.start()
        return True

    def status(self) -> WatcherStatus:
        """Each inbox as this watcher sees it: watched, or away since when and why. (Rejected
        manifests are read from their folders by the status page, which may run elsewhere.)"""
        with self._lock:
            return WatcherStatus(tuple(self._states.values()))

    def _intake_thread(self) -> threading.Thread:
        return threading.Thread(target=self._run, name="vidgen-intake", daemon=True)

    def _observe(self, inbox: InboxSettings) -> None:
        observer: BaseObserver
        if inbox.polling:
            observer = PollingObserver(timeout=self.settings.intake.poll_interval_seconds)
        else:
            observer = Observer()
        try:
            # inotify holds a rename out of the watched folder (our claim into processing/) for
            # 0.5 s waiting for its other half, and every later event waits behind it
            # (watchdog's InotifyMoveEventGrouper). Watching the subfolders too lets the claim
            # pair up at once; the handler still admits only top-level manifests. Polling
            # stays non-recursive: it would stat every file below the inbox on each pass.
            processing_dir(inbox.path).mkdir(parents=True, exist_ok=True)
            handler = self._handlers[inbox.path]
            observer.schedule(
                handler, str(inbox.path), recursive=not inbox.polling, event_filter=EVENTS
            )
            observer.start()
        except OSError as exc:  # gone between the check and the watch, or out of inotify watches
            self._outage(inbox, f"unavailable: {exc.strerror or exc}")
            return
        self._observers[inbox.path] = observer

    def _unobserve(self, path: Path) -> None:
        observer = self._observers.pop(path, None)
        if observer is not None:
            observer.stop()
            observer.join()

    def _run(self) -> None:
        try:
            self._recover()
        except Exception:  # each file's failure is handled inside; this is a bug's last net
            log.exception("recovering claimed manifests failed; intake goes on without")
        while not self._stop.is_set():
            try:
                self._turn()
            except Exception:  # one bad turn (a bug, a database hiccup) must not end intake
                log.exception("the intake loop failed; it goes on")
                self._stop.wait(_LOOP_FAILURE_PAUSE_SECONDS)

    def _recover(self) -> None:
        for result in self.intake.recover():
            log.info("recovered %s: %s", shown_name(result.source), result.outcome)
            if result.outcome is Outcome.RETRY and result.claimed is not None:
                self._schedule_retry(result.claimed, 0)

    def _turn(self) -> None:
        self._receive(self._wait_seconds())
        now = time.monotonic()
        if now >= self._next_rescan:
            self._rescan(now)
            self._next_rescan = now + self.settings.intake.rescan_seconds
        self._check_stability(now)
        self._take_ready()
        self._take_retries(now)
        self._liveness.beat(self._inbox_details())

    def _inbox_details(self) -> list[dict[str, Any]]:
        with self._lock:
            states = list(self._states.values())
        # Workers on every host read the PAUSE files from here (vidgen.holds).
        return [
            {"name": s.path.name, "available": s.available, "paused": pause_file_present(s.path)}
            for s in states
        ]

    def _wait_seconds(self) -> float:
        now = time.monotonic()
        # Paths a pool thread holds wait for its TAKEN event, not for their due time.
        waiting = [
            p.due
            for path, p in self._pending.items()
            if not p.writing and path not in self._in_flight
        ]
        waiting += [due for path, (due, _) in self._retries.items() if path not in self._in_flight]
        if len(self._in_flight) >= self._in_flight_limit:
            waiting = [p for p in waiting if p > now]  # nothing more can be taken until one ends
        soonest = min([*waiting, now + 1.0])
        return max(0.0, min(soonest - now, self._next_rescan - now, _IDLE_WAKE_SECONDS))

    def _receive(self, timeout: float) -> None:
        try:
            kind, path = (
                self._events.get(timeout=timeout) if timeout > 0 else self._events.get_nowait()
            )
        except queue.Empty:
            return
        while True:
            self._note(kind, path)
            try:
                kind, path = self._events.get_nowait()
            except queue.Empty:
                return

    def _note(self, kind: Kind, path: Path) -> None:
        if kind is Kind.TAKEN:
            self._finish(path)
            return
        flight = self._in_flight.get(path)
        current = self._pending.get(path)
        taken = flight is not None and current is not None and current is flight.pending
        if kind is Kind.GONE:
            if not taken:  # our own claim's rename is answered by the result, not by this
                self._pending.pop(path, None)
            return
        inbox = self.intake.inbox_of(path)
        now = time.monotonic()
        if current is None or taken:
            # A name dropped again while its first file is still being taken: a new entry,
            # which the first one's result leaves alone.
            current = self._pending[path] = _Pending(inbox, due=now)
        current.last_event = now
        if kind is Kind.CLOSED:
            current.ready, current.writing, current.due = True, False, now
        elif kind is Kind.MODIFIED and not inbox.polling:
            current.writing = True  # a local writer: its close event will say when it is done
        elif not current.ready:
            current.signature, current.due = None, now

    def _check_stability(self, now: float) -> None:
        for path, pending in list(self._pending.items()):
            if pending.ready or pending.writing or pending.due > now or path in self._in_flight:
                continue
            try:
                info = os.lstat(path)
            except OSError:
                self._pending.pop(path, None)
                self._check_presence(pending.inbox)  # gone with its share?
                continue
            signature = (info.st_size, info.st_mtime_ns)
            quiet = time.time() - info.st_mtime >= pending.inbox.stable_seconds
            # An empty file is taken too once it holds still: it is rejected, not left forever.
            # A link or a pipe never changes: intake refuses it without reading it.
            if signature == pending.signature or quiet or not stat.S_ISREG(info.st_mode):
                pending.ready = True
            else:
                pending.signature, pending.due = signature, now + pending.inbox.stable_seconds

    def _take_ready(self) -> None:
        for path, pending in list(self._pending.items()):
            if self._stop.is_set() or len(self._in_flight) >= self._in_flight_limit:
                return
            if pending.ready and pending.due <= time.monotonic() and path not in self._in_flight:
                self._submit(path, _Flight(self._pool.submit(self.intake.process, path), pending))

    def _take_retries(self, now: float) -> None:
        for path, (due, attempt) in list(self._retries.items()):
            if self._stop.is_set() or len(self._in_flight) >= self._in_flight_limit:
                return
            if due <= now and path not in self._in_flight:
                future = self._pool.submit(self.intake.resume, path)
                self._submit(path, _Flight(future, None, attempt))

    def _submit(self, path: Path, flight: _Flight) -> None:
        self._in_flight[path] = flight
        flight.future.add_done_callback(self._taken_callback(path))

    def _taken_callback(self, path: Path) -> Callable[[Future[IntakeResult]], None]:
        return lambda _future: self._events.put((Kind.TAKEN, path))

    def _finish(self, path: Path) -> None:
        """A pool thread is done with ``path``: read what happened, then forget the path or
        look at it again later."""
        flight = self._in_flight.pop(path, None)
        if flight is None:
            return
        try:
            result = flight.future.result()
        except Exception as exc:  # noqa: BLE001 (an unreadable inbox: nothing was claimed)
            self._failed_look(path, flight, exc)
            return
        if flight.pending is None:  # a claimed file resumed
            self._retries.pop(path, None)
            if result.outcome is Outcome.RETRY:
                self._schedule_retry(path, flight.attempt + 1)
            return
        if result.outcome is Outcome.RETRY and result.claimed is not None:
            self._schedule_retry(result.claimed, 0)
        if result.outcome is Outcome.GONE:
            self._check_presence(flight.pending.inbox)
        if self._pending.get(path) is not flight.pending:
            return  # dropped again meanwhile: that newer entry is looked at on its own
        if result.outcome is Outcome.WAITING:
            flight.pending.due = time.monotonic() + _WAITING_RETRY_SECONDS
        else:
            self._pending.pop(path, None)

    def _failed_look(self, path: Path, flight: _Flight, exc: Exception) -> None:
        forget_folders()  # in case a folder it knew was removed
        pending = flight.pending
        if pending is None:
            log.warning("resuming %s failed (%s); tried again later", shown_name(path), exc)
            self._schedule_retry(path, flight.attempt + 1)
            return
        delay = self._backoff(pending.failures)
        pending.failures += 1
        pending.due = time.monotonic() + delay
        log.warning("reading %s failed (%s); tried again in %.0f s", shown_name(path), exc, delay)
        self._check_presence(pending.inbox)

    def _schedule_retry(self, claimed: Path, attempt: int) -> None:
        delay = self._backoff(attempt)
        self._retries[claimed] = (time.monotonic() + delay, attempt)
        log.info("%s: tried again in %.1f s", shown_name(claimed.name), delay)

    def _backoff(self, attempt: int) -> float:
        intake = self.settings.intake
        return float(
            min(intake.retry_backoff_seconds * 2 ** min(attempt, 16), intake.rescan_seconds)
        )

    def _rescan(self, now: float) -> None:
        for inbox in self.settings.inboxes:
            away = self._presence[inbox.path].away()
            if away is not None:
                self._outage(inbox, away)
                continue
            try:
                names = top_level_names(inbox.path)
            except OSError as exc:
                self._outage(inbox, f"unavailable: {exc.strerror or exc}")
                continue
            self._available(inbox)
            handler = self._handlers[inbox.path]
            for name in names:
                if handler.is_manifest(name) and Path(name) not in self._pending:
                    self._pending[Path(name)] = _Pending(inbox, due=now)
        stale = self.settings.intake.rescan_seconds
        for pending in self._pending.values():
            if pending.writing and now - pending.last_event > stale:
                pending.writing, pending.due = False, now  # its close event was lost

    def _check_presence(self, inbox: InboxSettings) -> None:
        presence = self._presence.get(inbox.path)
        away = presence.away() if presence is not None else None
        if away is not None:
            self._outage(inbox, away)

    def _outage(self, inbox: InboxSettings, message: str) -> None:
        with self._lock:
            if not self._states[inbox.path].available:
                return
            self._states[inbox.path] = InboxState(
                inbox.path, inbox.polling, False, message, datetime.now(UTC)
            )
        log.warning("inbox %s is %s; nothing is moved until it is back", inbox.path, message)
        self.intake.grace_paused(inbox.path)
        self._unobserve(inbox.path)
        for path in [p for p, pending in self._pending.items() if pending.inbox == inbox]:
            if path not in self._in_flight:
                del self._pending[path]

    def _available(self, inbox: InboxSettings) -> None:
        with self._lock:
            was_down = not self._states[inbox.path].available
            self._states[inbox.path] = InboxState(inbox.path, inbox.polling, True)
        if was_down:
            log.info("inbox %s is back; watching it again", inbox.path)
            self.intake.grace_resumed(inbox.path)
        observer = self._observers.get(inbox.path)
        if observer is not None and not observer.is_alive():
            self._unobserve(inbox.path)  # its watch died with the folder it watched
        if inbox.path not in self._observers and not self._stop.is_set():
            self._observe(inbox)


__all__ = ["InboxState", "Watcher", "WatcherStatus"]
