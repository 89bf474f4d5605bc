"""Watching the inboxes: watchdog observers say which names changed, one thread decides when a
file is complete and hands it to ``Intake`` on a small pool (``intake.workers``), so that one
manifest's database round trips overlap another's parsing.

Events are hints (docs/intake-notes.md). Locally a closed write (``FileClosedEvent``) means
complete; a file that arrives by rename or over a share (no close event; PollingObserver never sends
one) must keep its size and mtime for the inbox's ``stableSeconds``. A full rescan at start and
every ``rescanSeconds`` catches what events missed, and notices an inbox that went away (an outage:
logged once, nothing destructive done) or came back.
"""

from __future__ import annotations

import glob
import logging
import os
import queue
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime
from enum import StrEnum
from pathlib import Path

from watchdog.events import (
    FileClosedEvent,
    FileCreatedEvent,
    FileDeletedEvent,
    FileModifiedEvent,
    FileMovedEvent,
    FileSystemEvent,
    PatternMatchingEventHandler,
)
from watchdog.observers import Observer
from watchdog.observers.api import BaseObserver
from watchdog.observers.polling import PollingObserver

from vidgen.config import InboxSettings, Settings
from watcher.files import forget_folders, processing_dir
from watcher.intake import Intake, IntakeResult, Outcome

log = logging.getLogger(__name__)

MANIFEST_PATTERNS = ("*.yaml", "*.yml")
IGNORED_PATTERNS = ("*.part", "*.tmp", "*.crdownload", "~*", ".*")
# The events intake acts on. Leaving out opens and read-only closes keeps inotify from waking
# the observer for every read of a manifest, intake's own included.
_EVENTS: list[type[FileSystemEvent]] = [
    FileCreatedEvent,
    FileModifiedEvent,
    FileClosedEvent,
    FileMovedEvent,
    FileDeletedEvent,
]
_WAITING_RETRY_SECONDS = 0.25
_IDLE_WAKE_SECONDS = 0.5


class _Kind(StrEnum):
    CLOSED = "closed"  # written and closed (inotify): complete
    ARRIVED = "arrived"  # created or renamed in: complete once stable
    MODIFIED = "modified"
    GONE = "gone"
    TAKEN = "taken"  # not a file event: a pool thread finished with this path


@dataclass(frozen=True, slots=True)
class InboxState:
    """One inbox as the status page shows it."""

    path: Path
    polling: bool
    available: bool
    message: str = ""
    since: datetime | None = None


@dataclass(frozen=True, slots=True)
class WatcherStatus:
    inboxes: tuple[InboxState, ...]


@dataclass
class _Pending:
    """A manifest seen but not yet taken: what intake knows of its completeness."""

    inbox: InboxSettings
    due: float  # monotonic time of the next look
    signature: tuple[int, int] | None = None  # (size, mtime_ns) at the last look
    writing: bool = False  # a local writer has it open: wait for its close
    ready: bool = False
    last_event: float = field(default_factory=time.monotonic)


class _Handler(PatternMatchingEventHandler):
    """Runs on the observer's thread: filters names, enqueues paths, nothing else."""

    def __init__(self, inbox: InboxSettings, events: queue.SimpleQueue[tuple[_Kind, Path]]):
        folder = glob.escape(str(inbox.path))
        super().__init__(
            patterns=[f"{folder}/{p}" for p in MANIFEST_PATTERNS],
            ignore_patterns=[f"{folder}/{p}" for p in IGNORED_PATTERNS],
            ignore_directories=True,
            case_sensitive=False,
            # A rename x.part → x.yaml must pass although its source name is ignored.
            ignore_policy="all",
        )
        self._events = events

    def is_manifest(self, path: str) -> bool:
        return self.is_included(path) and not self.is_ignored(path)

    def _put(self, kind: _Kind, raw: bytes | str) -> None:
        path = raw.decode() if isinstance(raw, bytes) else raw
        if self.is_manifest(path):
            self._events.put((kind, Path(path)))

    def on_closed(self, event: FileSystemEvent) -> None:
        self._put(_Kind.CLOSED, event.src_path)

    def on_created(self, event: FileSystemEvent) -> None:
        self._put(_Kind.ARRIVED, event.src_path)

    def on_modified(self, event: FileSystemEvent) -> None:
        self._put(_Kind.MODIFIED, event.src_path)

    def on_moved(self, event: FileSystemEvent) -> None:
        self._put(_Kind.GONE, event.src_path)
        self._put(_Kind.ARRIVED, event.dest_path)

    def on_deleted(self, event: FileSystemEvent) -> None:
        self._put(_Kind.GONE, event.src_path)


class Watcher:
    """Observers on every inbox and the one intake thread; ``start()``/``stop()``."""

    def __init__(self, settings: Settings, intake: Intake) -> None:
        self.settings = settings
        self.intake = intake
        self._events: queue.SimpleQueue[tuple[_Kind, Path]] = queue.SimpleQueue()
        self._handlers = {i.path: _Handler(i, self._events) for i in settings.inboxes}
        self._observers: dict[Path, BaseObserver] = {}
        self._states = {i.path: InboxState(i.path, i.polling, True) for i in settings.inboxes}
        self._pending: dict[Path, _Pending] = {}
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="vidgen-intake", daemon=True)
        self._pool = ThreadPoolExecutor(
            max_workers=settings.intake.workers, thread_name_prefix="vidgen-intake"
        )
        self._in_flight: dict[Path, Future[IntakeResult]] = {}
        self._in_flight_limit = 2 * settings.intake.workers  # enough to keep every thread busy
        self._next_rescan = 0.0

    def start(self) -> None:
        """Recover what a crash left, watch every inbox, rescan, then follow events."""
        for inbox in self.settings.inboxes:
            if inbox.path.is_dir():
                self._observe(inbox)
        described = "; ".join(
            f"{i.path} ({'polling' if i.polling else 'inotify'})" for i in self.settings.inboxes
        )
        log.info("watching %d inbox(es): %s", len(self.settings.inboxes), described)
        self._thread.start()

    def stop(self) -> None:
        """Stop observing; the file being taken is finished first. Threads are joined."""
        self._stop.set()
        for path in list(self._observers):
            self._unobserve(path)
        if self._thread.is_alive():
            self._thread.join()
        self._pool.shutdown(wait=True)

    def status(self) -> WatcherStatus:
        """Each inbox as this watcher sees it: watched, or away since when and why. (Rejected
        manifests are read from their folders by the status page, which may run elsewhere.)"""
        with self._lock:
            return WatcherStatus(tuple(self._states.values()))

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
            # pair up at once; the patterns still admit only top-level manifests. Polling
            # stays non-recursive: it would stat every file below the inbox on each pass.
            processing_dir(inbox.path).mkdir(parents=True, exist_ok=True)
            handler = self._handlers[inbox.path]
            observer.schedule(
                handler, str(inbox.path), recursive=not inbox.polling, event_filter=_EVENTS
            )
            observer.start()
        except OSError as exc:  # gone between the check and the watch, or out of inotify watches
            self._outage(inbox, exc)
            return
        self._observers[inbox.path] = observer

    def _unobserve(self, path: Path) -> None:
        observer = self._observers.pop(path, None)
        if observer is not None:
            observer.stop()
            observer.join()

    def _run(self) -> None:
        for result in self.intake.recover():
            log.info("recovered %s: %s", result.source, result.outcome)
        while not self._stop.is_set():
            self._receive(self._wait_seconds())
            now = time.monotonic()
            if now >= self._next_rescan:
                self._rescan(now)
                self._next_rescan = now + self.settings.intake.rescan_seconds
            self._check_stability(now)
            self._take_ready()

    def _wait_seconds(self) -> float:
        now = time.monotonic()
        # Paths a pool thread holds wait for its TAKEN event, not for their due time.
        waiting = [
            p.due
            for path, p in self._pending.items()
            if not p.writing and path not in self._in_flight
        ]
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

    def _note(self, kind: _Kind, path: Path) -> None:
        if kind is _Kind.TAKEN:
            self._finish(path)
            return
        inbox = self.intake.inbox_of(path)
        if kind is _Kind.GONE:
            self._pending.pop(path, None)
            return
        now = time.monotonic()
        pending = self._pending.setdefault(path, _Pending(inbox, due=now))
        pending.last_event = now
        if kind is _Kind.CLOSED:
            pending.ready, pending.writing, pending.due = True, False, now
        elif kind is _Kind.MODIFIED and not inbox.polling:
            pending.writing = True  # a local writer: its close event will say when it is done
        elif not pending.ready:
            pending.signature, pending.due = None, now

    def _check_stability(self, now: float) -> None:
        for path, pending in list(self._pending.items()):
            if pending.ready or pending.writing or pending.due > now:
                continue
            try:
                stat = path.stat()
            except OSError:
                self._pending.pop(path, None)
                continue
            signature = (stat.st_size, stat.st_mtime_ns)
            quiet = time.time() - stat.st_mtime >= pending.inbox.stable_seconds
            if stat.st_size > 0 and (signature == pending.signature or quiet):
                pending.ready = True
            else:
                pending.signature, pending.due = signature, now + pending.inbox.stable_seconds

    def _take_ready(self) -> None:
        for path, pending in list(self._pending.items()):
            if self._stop.is_set() or len(self._in_flight) >= self._in_flight_limit:
                return
            if pending.ready and pending.due <= time.monotonic() and path not in self._in_flight:
                future = self._pool.submit(self.intake.process, path)
                self._in_flight[path] = future
                future.add_done_callback(self._taken_callback(path))

    def _taken_callback(self, path: Path) -> Callable[[Future[IntakeResult]], None]:
        return lambda _future: self._events.put((_Kind.TAKEN, path))

    def _finish(self, path: Path) -> None:
        """A pool thread is done with ``path``: forget it, or look again later."""
        future = self._in_flight.pop(path, None)
        pending = self._pending.get(path)
        if future is None or pending is None:
            return
        try:
            result = future.result()
        except Exception:  # one bad file or a database hiccup must not stop intake
            log.exception("intake of %s failed; trying again at the next rescan", path)
            forget_folders()  # in case a folder it knew was removed
            pending.due = time.monotonic() + self.settings.intake.rescan_seconds
            return
        if result.outcome is Outcome.WAITING:
            pending.due = time.monotonic() + _WAITING_RETRY_SECONDS
        else:
            self._pending.pop(path, None)

    def _rescan(self, now: float) -> None:
        for inbox in self.settings.inboxes:
            try:
                names = [entry.path for entry in _scan(inbox.path)]
            except OSError as exc:
                self._outage(inbox, exc)
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

    def _outage(self, inbox: InboxSettings, exc: OSError) -> None:
        with self._lock:
            if not self._states[inbox.path].available:
                return
            message = f"unavailable: {exc.strerror or exc}"
            self._states[inbox.path] = InboxState(
                inbox.path, inbox.polling, False, message, datetime.now(UTC)
            )
        log.warning("inbox %s is %s; nothing is moved until it is back", inbox.path, message)
        self._unobserve(inbox.path)
        for path in [p for p, pending in self._pending.items() if pending.inbox == inbox]:
            del self._pending[path]

    def _available(self, inbox: InboxSettings) -> None:
        with self._lock:
            was_down = not self._states[inbox.path].available
            self._states[inbox.path] = InboxState(inbox.path, inbox.polling, True)
        if was_down:
            log.info("inbox %s is back; watching it again", inbox.path)
        observer = self._observers.get(inbox.path)
        if observer is not None and not observer.is_alive():
            self._unobserve(inbox.path)  # its watch died with the folder it watched
        if inbox.path not in self._observers and not self._stop.is_set():
            self._observe(inbox)


def _scan(folder: Path) -> list[os.DirEntry[str]]:
    if not folder.is_dir():
        raise FileNotFoundError(2, "the folder does not exist", str(folder))
    with os.scandir(folder) as entries:
        return [entry for entry in entries if entry.is_file(follow_symlinks=False)]
