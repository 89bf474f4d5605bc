"""File moves of intake, each one step that a crash leaves either done or not done.

A claim is a rename into ``inbox/.vidgen/processing/<manifestId>__<name>`` (atomic on one
filesystem, so of two watchers exactly one wins); while a process works on a claimed file it
holds an advisory lock on it, so ``recover()`` in another process never takes over live work.
"""

from __future__ import annotations

import errno
import hashlib
import os
import sys
from pathlib import Path
from typing import BinaryIO

from vidgen.naming import NAME_MAX_BYTES, fit_name, temporary_sibling

PROCESSING = Path(".vidgen") / "processing"
REJECTED = "rejected"
ERROR_SUFFIX = ".error.txt"
CLAIM_SEPARATOR = "__"


def processing_dir(inbox: Path) -> Path:
    return inbox / PROCESSING


def claim_name(manifest_id: str, original: str) -> str:
    """``<manifestId>__<original>``, the original shortened from the front if the whole name
    would pass the filesystem's 255-byte limit (the extension is kept)."""
    prefix = f"{manifest_id}{CLAIM_SEPARATOR}"
    return prefix + fit_name(original, NAME_MAX_BYTES - len(prefix.encode()), keep_end=True)


def split_claim(name: str) -> tuple[str, str] | None:
    """``(manifestId, original name)`` of a claimed file, or None for a file that is not one."""
    manifest_id, separator, original = name.partition(CLAIM_SEPARATOR)
    return (manifest_id, original) if separator and len(manifest_id) == 36 and original else None


def try_lock(handle: BinaryIO) -> bool:
    """An exclusive advisory lock on an open file, without waiting; released on close or death."""
    if sys.platform == "win32":  # Windows has no flock; the claim rename alone decides there
        return True
    import fcntl

    try:
        fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError as exc:
        if exc.errno in (errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES):
            return False
        raise
    return True


def move_no_clobber(source: Path, target: Path) -> bool:
    """Move ``source`` to ``target`` unless ``target`` exists; False when it does.

    A hard link fails if the name is taken (atomic, no race with another process); where the
    filesystem has no hard links (some SMB shares) a checked rename is the best available.
    """
    try:
        # A claimed file may be a symbolic link (a manifest dropped as one): the link itself
        # moves, never what it points to.
        os.link(source, target, follow_symlinks=False)
    except FileExistsError:
        return False
    except OSError as exc:
        if exc.errno not in (errno.EPERM, errno.ENOTSUP, errno.EOPNOTSUPP, errno.EXDEV):
            raise
        if target.exists():
            return False
        source.rename(target)
        return True
    source.unlink()
    return True


_made_folders: set[Path] = set()


def ensure_folder(folder: Path) -> None:
    """``mkdir -p``, once per folder and process: on a NAS or a slow disk each mkdir is a round
    trip, and intake would otherwise make the same folders for every manifest. A folder removed
    behind our back is made again after ``forget_folders`` (the watcher calls it on a failure)."""
    if folder in _made_folders:
        return
    folder.mkdir(parents=True, exist_ok=True)
    _made_folders.add(folder)


def forget_folders() -> None:
    _made_folders.clear()


def rejected_target(inbox: Path, original: str, attempt: int) -> Path:
    """``rejected/trip.yaml``, then ``rejected/trip-2.yaml``, ``trip-3.yaml``… A name so long
    that ``NAME.error.txt`` would pass the filesystem's 255 bytes is shortened (extension kept),
    so the file and its error file always sit side by side."""
    name = Path(original)
    suffix = "" if attempt <= 1 else f"-{attempt}"
    room = NAME_MAX_BYTES - len(ERROR_SUFFIX) - len(os.fsencode(suffix + name.suffix))
    return inbox / REJECTED / f"{fit_name(name.stem, room, keep_end=False)}{suffix}{name.suffix}"


def write_atomically(target: Path, text: str | bytes) -> None:
    """``target`` appears whole with ``text`` (or these bytes), or keeps its old content."""
    ensure_folder(target.parent)
    partial = temporary_sibling(target)
    try:
        partial.write_bytes(text.encode("utf-8") if isinstance(text, str) else text)
        partial.replace(target)
    finally:
        partial.unlink(missing_ok=True)


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1024 * 1024), b""):
            digest.update(block)
    return digest.hexdigest()


def sha256_bytes(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def find_same_content(folder: Path, size: int, digest: str) -> Path | None:
    """A file in ``folder`` with these bytes (a reference stored before, or by a crashed try)."""
    try:
        candidates = [p for p in folder.iterdir() if not p.name.startswith(".")]
    except FileNotFoundError:
        return None
    for candidate in sorted(candidates):
        same_size = candidate.is_file() and candidate.stat().st_size == size
        if same_size and sha256_file(candidate) == digest:
            return candidate
    return None
