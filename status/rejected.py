"""The rejected manifests: each inbox's ``rejected/`` folder, with the ``.error.txt`` beside each
file, so someone who dropped a manifest on a share can see why it was refused."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from vidgen.config import Settings

ERROR_SUFFIX = ".error.txt"
REJECTED_FOLDER = "rejected"
MAX_ERROR_BYTES = 64 * 1024  # an error file is a few lines; never read a huge one whole


@dataclass(frozen=True, slots=True)
class RejectedManifest:
    inbox: str  # the inbox folder's name, not its path
    file_name: str
    error_text: str
    rejected_at: datetime


RejectedLister = Callable[[], list[RejectedManifest]]


def inbox_rejected_lister(settings: Settings) -> RejectedLister:
    """The default lister: reads ``rejected/`` of every configured inbox, newest first."""
    inboxes = [inbox.path for inbox in settings.inboxes]

    def list_rejected() -> list[RejectedManifest]:
        found = [item for inbox in inboxes for item in _rejected_in(inbox)]
        return sorted(found, key=lambda item: item.rejected_at, reverse=True)

    return list_rejected


def _rejected_in(inbox: Path) -> list[RejectedManifest]:
    folder = inbox / REJECTED_FOLDER
    try:
        entries = [p for p in folder.iterdir() if p.is_file() and not p.name.startswith(".")]
    except OSError:
        return []  # no rejected/ yet, or the share is away: nothing to show
    names = {p.name for p in entries}
    items: list[RejectedManifest] = []
    for path in entries:
        if path.name.endswith(ERROR_SUFFIX):
            # An error file whose manifest was taken away still says what was wrong.
            if path.name.removesuffix(ERROR_SUFFIX) not in names:
                items.append(_item(inbox, path.name.removesuffix(ERROR_SUFFIX), path, path))
            continue
        error = path.with_name(path.name + ERROR_SUFFIX)
        items.append(_item(inbox, path.name, path, error))
    return items


def _item(inbox: Path, name: str, stamp_from: Path, error: Path) -> RejectedManifest:
    return RejectedManifest(
        inbox=inbox.name,
        file_name=name,
        error_text=_read_error(error),
        rejected_at=datetime.fromtimestamp(_mtime(stamp_from), UTC),
    )


def _mtime(path: Path) -> float:
    try:
        return path.stat().st_mtime
    except OSError:
        return 0.0


def _read_error(path: Path) -> str:
    try:
        with path.open("rb") as handle:
            data = handle.read(MAX_ERROR_BYTES + 1)
    except OSError:
        return "(no error file beside it)"
    text = data[:MAX_ERROR_BYTES].decode("utf-8", errors="replace")
    return text + ("\n…" if len(data) > MAX_ERROR_BYTES else "")
