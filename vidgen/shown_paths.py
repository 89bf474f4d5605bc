"""Paths as a person may see them: relative to the storage, outbox or inbox they lie in
(``storage/summerTrip/refs/…``, ``outbox/…``), never the folders of the machine vidgen runs on.

What vidgen writes for a person (job logs, a job's error, error files in the outbox and in
``rejected/``, the status page's JSON and pages) goes through one ``ShownPaths`` made from the
settings. Storage is ``storage`` and the global outbox ``outbox``; an inbox, and an inbox's own
outbox, go by their folder's name, as the status page names them everywhere else.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterable
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path, PurePosixPath
from typing import Any

from vidgen.config import Settings

__all__ = ["ShownPaths"]

STORAGE_LABEL = "storage"
OUTBOX_LABEL = "outbox"


@dataclass(frozen=True, slots=True)
class ShownPaths:
    """The folders vidgen knows, each with the word it is shown as, the longest first (so a
    folder inside another is named by the inner one)."""

    roots: tuple[tuple[str, str], ...]  # (absolute folder without a trailing slash, label)

    @classmethod
    def from_settings(cls, settings: Settings) -> ShownPaths:
        named = [(settings.storage, STORAGE_LABEL), (settings.outbox, OUTBOX_LABEL)]
        named += [(inbox.path, inbox.path.name) for inbox in settings.inboxes]
        named += [(outbox, outbox.name) for outbox in settings.all_outboxes]
        return cls.of(named)

    @classmethod
    def of(cls, named: Iterable[tuple[Path, str]]) -> ShownPaths:
        """From (folder, label) pairs; the first label given to a folder wins."""
        roots: dict[str, str] = {}
        for folder, label in named:
            # Both spellings: the configured one, and the real one (a symlinked /tmp, a share
            # mounted through a link) that ffmpeg or the OS may print instead.
            for spelling in (str(folder.absolute()), str(folder.resolve())):
                if spelling.rstrip("/"):
                    roots.setdefault(spelling.rstrip("/"), label)
        ordered = sorted(roots.items(), key=lambda item: len(item[0]), reverse=True)
        return cls(tuple(ordered))

    def path(self, value: str | os.PathLike[str]) -> str:
        """``storage/summerTrip/refs/x.png`` for a path inside a known folder, the bare file
        name for any other absolute path, a relative path as it is."""
        text = os.fspath(value)
        for folder, label in self.roots:
            if text == folder or text.startswith(folder + "/"):
                return label + text[len(folder) :]
        return PurePosixPath(text).name if text.startswith("/") else text

    def text(self, message: str) -> str:
        """``message`` with every known folder written as its label."""
        for folder, label in self.roots:
            if folder in message:
                message = _folder_pattern(folder).sub(label, message)
        return message

    def json(self, value: Any) -> Any:
        """A JSON value with every string that is a path shown by ``path`` and every other
        string by ``text`` (job settings, ComfyUI graphs)."""
        if isinstance(value, dict):
            return {key: self.json(item) for key, item in value.items()}
        if isinstance(value, list | tuple):
            return [self.json(item) for item in value]
        if isinstance(value, str):
            return self.path(value) if _ABSOLUTE_PATH.fullmatch(value) else self.text(value)
        return value


# A whole string that is one absolute path: no spaces, no line breaks, no URL.
_ABSOLUTE_PATH = re.compile(r"/[^\s:]*")


@lru_cache(maxsize=64)
def _folder_pattern(folder: str) -> re.Pattern[str]:
    # Only the whole folder: not "/srv/storage2" for "/srv/storage", nor the tail of a longer
    # path or a URL that happens to end the same way.
    return re.compile(rf"(?<![\w./-]){re.escape(folder)}(?![\w.-])")
