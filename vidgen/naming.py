"""Names: camelCase project names, ``{YYYYMMDD}_{projectName}_{type}_{NNN}.{ext}`` file names,
and ``publish()``, the one way a finished file reaches a folder users watch."""

from __future__ import annotations

import errno
import hashlib
import os
import shutil
import unicodedata
import uuid
from collections.abc import Callable
from datetime import date
from enum import StrEnum
from pathlib import Path

from vidgen.db.counters import allocate_index
from vidgen.db.session import Database
from vidgen.errors import StorageError

MAX_PROJECT_NAME = 64
NAME_MAX_BYTES = 255  # a file name's limit on every filesystem vidgen meets
_PARTIAL_EXTRA = len(".") + len(".12345678.part")


class FileType(StrEnum):
    CLIP = "clip"
    THUMB = "thumb"
    REF = "ref"
    MANIFEST = "manifest"
    MERGED = "merged"
    UPSCALED = "upscaled"
    INTERPOLATED = "interpolated"
    EXPORT = "export"
    SHEET = "sheet"  # a contact sheet of a clip's variations (.mp4, and a .png beside it)
    ERROR = "error"


def project_name(display_name: str) -> str:
    """``My NAS videos`` → ``myNasVideos``, ``내 프로젝트`` → ``내프로젝트``; never empty or a path.

    Words are the runs of letters and digits (any script) after NFC normalisation; emoji and
    punctuation separate words and are dropped.
    """
    text = unicodedata.normalize("NFC", display_name)
    words: list[str] = []
    current: list[str] = []
    for char in text:
        if unicodedata.category(char)[0] in ("L", "N"):
            current.append(char)
        elif current:
            words.append("".join(current))
            current = []
    if current:
        words.append("".join(current))
    if not words:
        digest = hashlib.sha256(display_name.encode("utf-8", "surrogatepass")).hexdigest()[:8]
        return f"project{digest}"
    name = words[0].lower() + "".join(w[:1].upper() + w[1:].lower() for w in words[1:])
    return unicodedata.normalize("NFC", name)[:MAX_PROJECT_NAME]


def file_name(day: date, project: str, file_type: FileType, index: int, extension: str) -> str:
    return f"{day:%Y%m%d}_{project}_{file_type.value}_{index:03d}.{extension}"


def allocate_path(
    database: Database,
    directory: Path,
    project: str,
    file_type: FileType,
    extension: str,
    day: date | None = None,
) -> Path:
    """The next free conventional name in ``directory`` (an index whose file already exists,
    e.g. from an older database, is skipped)."""
    return first_free_path(
        lambda: allocate_index(database, project, file_type.value),
        directory,
        project,
        file_type,
        extension,
        day,
    )


def first_free_path(
    next_index: Callable[[], int],
    directory: Path,
    project: str,
    file_type: FileType,
    extension: str,
    day: date | None = None,
) -> Path:
    """The first conventional name in ``directory`` whose file does not exist yet."""
    today = day or date.today()  # noqa: DTZ011 (the user's local date is the convention)
    while True:
        candidate = directory / file_name(today, project, file_type, next_index(), extension)
        if not candidate.exists():
            return candidate


def temporary_sibling(target: Path) -> Path:
    """A hidden partial name beside ``target``: ignored by the watcher and by users' tools. A
    long name is cut so that the partial one still fits the filesystem's 255 bytes."""
    name = fit_name(target.name, NAME_MAX_BYTES - _PARTIAL_EXTRA)
    return target.with_name(f".{name}.{uuid.uuid4().hex[:8]}.part")


def fit_name(name: str, room: int, *, keep_end: bool = False) -> str:
    """``name`` cut to at most ``room`` bytes, keeping its start (or its end); a UTF-8
    character cut in two is dropped, and bytes that are not UTF-8 stay as they are."""
    encoded = os.fsencode(name)
    if len(encoded) <= room:
        return name
    kept = encoded[-room:] if keep_end else encoded[:room]
    try:
        encoded.decode("utf-8")
    except UnicodeDecodeError:
        return os.fsdecode(kept)
    return kept.decode("utf-8", "ignore")


def publish(source: Path, target: Path) -> Path:
    """Move ``source`` to ``target`` so that ``target`` appears whole or not at all.

    A rename when both sit on one filesystem; otherwise a copy to a hidden partial name beside
    the target, then ``os.replace`` (atomic there).

    Raises:
        StorageError: the disk is full or the folder cannot be written.
    """
    target.parent.mkdir(parents=True, exist_ok=True)
    try:
        source.replace(target)
        return target
    except OSError as exc:
        if exc.errno != errno.EXDEV:
            raise _storage_error(exc, target) from exc
    partial = temporary_sibling(target)
    try:
        with source.open("rb") as reader, partial.open("wb") as writer:
            shutil.copyfileobj(reader, writer, 1024 * 1024)
            writer.flush()
            os.fsync(writer.fileno())
        partial.replace(target)
    except OSError as exc:
        partial.unlink(missing_ok=True)
        raise _storage_error(exc, target) from exc
    source.unlink(missing_ok=True)
    return target


def publish_shared(source: Path, target: Path) -> Path:
    """Make ``target`` a second name of ``source`` (which stays), appearing whole or not at all.

    A hard link, so the bytes are stored once (an imported video named by 200 clips is one
    file); where the filesystem has none (some SMB shares), a copy.

    Raises:
        StorageError: the disk is full or the folder cannot be written.
    """
    target.parent.mkdir(parents=True, exist_ok=True)
    partial = temporary_sibling(target)
    try:
        try:
            os.link(source, partial, follow_symlinks=False)
        except OSError as exc:
            if exc.errno not in (
                errno.EPERM,
                errno.ENOTSUP,
                errno.EOPNOTSUPP,
                errno.EXDEV,
                errno.EMLINK,
            ):
                raise
            shutil.copyfile(source, partial)
        partial.replace(target)
    except OSError as exc:
        partial.unlink(missing_ok=True)
        raise _storage_error(exc, target) from exc
    return target


def _storage_error(exc: OSError, target: Path) -> StorageError:
    # Folders by their name: the message reaches the job's log, the status page, error files.
    folder = target.parent.name
    if exc.errno == errno.ENOSPC:
        return StorageError(f"the disk holding the folder {folder} is full; free some space")
    reason = exc.strerror or type(exc).__name__
    return StorageError(f"cannot write {target.name} into the folder {folder}: {reason}")
