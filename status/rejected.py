"""The rejected manifests: each inbox's ``rejected/`` folder, with the ``.error.txt`` beside each
file, so someone who dropped a manifest on a share can see why it was refused.

Whoever can write to the inbox can put anything into ``rejected/``: the folder is read through
``status.plain_files`` (regular files only, no link followed, nothing that blocks), each error
file up to ``MAX_ERROR_BYTES``, the newest ``MAX_SHOWN`` manifests in all, and names that are
not valid UTF-8 are shown escaped.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from vidgen.config import Settings
from vidgen.safe_files import PlainFile, open_folder, plain_files, read_start, shown_name

ERROR_SUFFIX = ".error.txt"
REJECTED_FOLDER = "rejected"
MAX_ERROR_BYTES = 16 * 1024  # an error file is a few lines; never read a huge one whole
MAX_SHOWN = 100  # the newest manifests shown; the others are counted
MAX_SCANNED = 10_000  # entries looked at in one rejected/ folder
NO_ERROR_FILE = "(no error file beside it)"
NOT_PLAIN = "(its error file is not a plain file, so it is not shown)"


@dataclass(frozen=True, slots=True)
class RejectedManifest:
    inbox: str  # the inbox folder's name, not its path
    file_name: str  # escaped where it is not valid UTF-8
    error_text: str
    rejected_at: datetime


@dataclass(frozen=True, slots=True)
class RejectedListing:
    """What the page shows: the newest rejected manifests, and how many more there are."""

    items: list[RejectedManifest]
    more: int = 0
    counted_all: bool = True  # False: a folder was too big to look at whole; more is at least


RejectedLister = Callable[[], RejectedListing]


@dataclass(frozen=True, slots=True)
class _Found:
    manifest: str
    error_file: str
    modified: float


def inbox_rejected_lister(settings: Settings) -> RejectedLister:
    """The default lister: reads ``rejected/`` of every configured inbox, newest first."""
    inboxes = [inbox.path for inbox in settings.inboxes]

    def list_rejected() -> RejectedListing:
        items: list[RejectedManifest] = []
        total, counted_all = 0, True
        for inbox in inboxes:
            shown, count, complete = _rejected_in(inbox)
            items += shown
            total += count
            counted_all = counted_all and complete
        items.sort(key=lambda item: item.rejected_at, reverse=True)
        return RejectedListing(items[:MAX_SHOWN], total - min(len(items), MAX_SHOWN), counted_all)

    return list_rejected


def _rejected_in(inbox: Path) -> tuple[list[RejectedManifest], int, bool]:
    """The newest ``MAX_SHOWN`` rejected manifests of one inbox with their error texts, how
    many there are in all, and whether the whole folder was looked at."""
    with open_folder(inbox, [REJECTED_FOLDER]) as folder:
        if folder is None:
            return [], 0, True  # no rejected/ yet, the share is away, or it is a link: nothing
        files, complete = plain_files(folder, MAX_SCANNED)
        found = sorted(_pairs(files), key=lambda item: item.modified, reverse=True)
        items = [
            RejectedManifest(
                inbox=shown_name(inbox.name),
                file_name=shown_name(item.manifest),
                error_text=_error_text(item.error_file, folder),
                rejected_at=datetime.fromtimestamp(item.modified, UTC),
            )
            for item in found[:MAX_SHOWN]
        ]
    return items, len(found), complete


def _pairs(files: list[PlainFile]) -> list[_Found]:
    """Each rejected manifest with the name of its error file; an error file whose manifest was
    taken away still says what was wrong, so it counts as one too."""
    names = {file.name for file in files}
    found: list[_Found] = []
    for file in files:
        if file.name.endswith(ERROR_SUFFIX):
            manifest = file.name.removesuffix(ERROR_SUFFIX)
            if manifest not in names:
                found.append(_Found(manifest, file.name, file.modified))
        else:
            found.append(_Found(file.name, file.name + ERROR_SUFFIX, file.modified))
    return found


def _error_text(name: str, folder: int) -> str:
    data = read_start(name, folder, MAX_ERROR_BYTES)
    if data is None:
        return NOT_PLAIN if _exists(name, folder) else NO_ERROR_FILE
    text = data[:MAX_ERROR_BYTES].decode("utf-8", errors="replace")
    return text + ("\n…" if len(data) > MAX_ERROR_BYTES else "")


def _exists(name: str, folder: int) -> bool:
    try:
        os.stat(name, dir_fd=folder, follow_symlinks=False)
    except (OSError, ValueError):
        return False
    return True
