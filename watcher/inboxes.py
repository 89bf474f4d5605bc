"""Whether an inbox is there: a folder that vanished is an outage, and so is a share that was
mounted on the inbox folder and is no longer.

An unmounted share leaves its mount point behind as an empty folder of the filesystem below, which
would look like a healthy inbox with every file deleted. So an inbox seen as a mount point (its
``st_dev`` differs from its parent folder's) is expected to stay one: once its ``st_dev`` is its
parent's again, the share is away. A share mounted again, whatever device number it gets, is
back. (An inbox bind-mounted from the same filesystem has its parent's ``st_dev`` and is not seen
as a mount point; nor is one whose share was not mounted yet when vidgen started, until it is.)
"""

from __future__ import annotations

import os
import stat
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path


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


def top_level_names(folder: Path) -> list[str]:
    """Every name at the top of ``folder`` that is not a folder (links and pipes included:
    intake refuses those with an error file instead of leaving them unexplained)."""
    with os.scandir(folder) as entries:
        return [entry.path for entry in entries if not entry.is_dir(follow_symlinks=False)]


class Presence:
    """Tells, each time it is asked, whether one inbox folder is there."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.mount_device: int | None = None  # st_dev of the share once seen mounted here

    def away(self) -> str | None:
        """Why the inbox is unavailable, or None when it is there."""
        try:
            info = self.path.stat()
            below = self.path.parent.stat().st_dev
        except OSError as exc:
            return f"unavailable: {exc.strerror or exc}"
        if not stat.S_ISDIR(info.st_mode):
            return "unavailable: it is not a folder"
        if info.st_dev != below:
            self.mount_device = info.st_dev
        elif self.mount_device is not None:
            return (
                "unavailable: the share mounted there is away (the folder is the bare mount point)"
            )
        return None
