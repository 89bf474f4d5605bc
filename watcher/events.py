"""Which names are manifests, and watchdog's events turned into what intake needs to know.

A manifest is a ``*.yaml`` / ``*.yml`` file (any case) directly inside an inbox whose name is
not ignored (``*.part``, ``*.tmp``, ``*.crdownload``, ``~*``, ``.*``). Names are compared as
they are: a ``\\`` or a ``[`` in a name is a character of that name, never a separator or a
pattern (watchdog's case-insensitive patterns read ``\\`` as a Windows separator, which left
``a\\b.yaml`` untaken).
"""

from __future__ import annotations

import fnmatch
import os
import queue
from enum import StrEnum
from pathlib import Path

from watchdog.events import (
    FileClosedEvent,
    FileCreatedEvent,
    FileDeletedEvent,
    FileModifiedEvent,
    FileMovedEvent,
    FileSystemEvent,
    FileSystemEventHandler,
)

from vidgen.config import InboxSettings

MANIFEST_SUFFIXES = (".yaml", ".yml")
IGNORED_PATTERNS = ("*.part", "*.tmp", "*.crdownload", "~*", ".*")
# The events intake acts on. Leaving out opens and read-only closes keeps inotify from waking
# the observer for every read of a manifest, intake's own included.
EVENTS: list[type[FileSystemEvent]] = [
    FileCreatedEvent,
    FileModifiedEvent,
    FileClosedEvent,
    FileMovedEvent,
    FileDeletedEvent,
]


class Kind(StrEnum):
    CLOSED = "closed"  # written and closed (inotify): complete
    ARRIVED = "arrived"  # created or renamed in: complete once stable
    MODIFIED = "modified"
    GONE = "gone"
    TAKEN = "taken"  # not a file event: a pool thread finished with this path


Events = queue.SimpleQueue[tuple[Kind, Path]]


def is_manifest_name(name: str) -> bool:
    lowered = name.lower()
    if not lowered.endswith(MANIFEST_SUFFIXES):
        return False
    return not any(fnmatch.fnmatchcase(lowered, pattern) for pattern in IGNORED_PATTERNS)


class Handler(FileSystemEventHandler):
    """Runs on the observer's thread: filters names, enqueues paths, nothing else."""

    def __init__(self, inbox: InboxSettings, events: Events) -> None:
        self._folder = str(inbox.path)
        self._events = events

    def is_manifest(self, path: str) -> bool:
        """Whether ``path`` (as watchdog or a scan spells it) is a manifest of this inbox."""
        folder, _, name = path.rpartition(os.sep)
        return folder == self._folder and is_manifest_name(name)

    def _put(self, kind: Kind, event: FileSystemEvent, raw: bytes | str) -> None:
        path = os.fsdecode(raw)
        if not event.is_directory and self.is_manifest(path):
            self._events.put((kind, Path(path)))

    def on_closed(self, event: FileSystemEvent) -> None:
        self._put(Kind.CLOSED, event, event.src_path)

    def on_created(self, event: FileSystemEvent) -> None:
        self._put(Kind.ARRIVED, event, event.src_path)

    def on_modified(self, event: FileSystemEvent) -> None:
        self._put(Kind.MODIFIED, event, event.src_path)

    def on_moved(self, event: FileSystemEvent) -> None:
        # A rename x.part → x.yaml counts although its first name is ignored.
        self._put(Kind.GONE, event, event.src_path)
        self._put(Kind.ARRIVED, event, event.dest_path)

    def on_deleted(self, event: FileSystemEvent) -> None:
        self._put(Kind.GONE, event, event.src_path)
