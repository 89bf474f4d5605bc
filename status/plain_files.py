"""Reading folders other people can write to (an inbox on a household share, its ``rejected/``
folder) without being fooled or stalled by what they put there.

Only regular files are read, and only through a descriptor whose type was checked after it was
opened (``fstat``), so nothing swapped in between a check and the open counts. Symbolic links
are never followed (``O_NOFOLLOW`` on every component below the configured folder). Nothing
blocks: FIFOs, devices and sockets are opened with ``O_NONBLOCK`` (a FIFO without a writer opens
at once) and then refused; reads and listings are bounded.
"""

from __future__ import annotations

import os
import stat
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import BinaryIO

# O_NONBLOCK: opening a FIFO for reading would otherwise wait for a writer, forever.
# O_NOCTTY: a terminal device opened by mistake must not become ours.
_OPEN_FILE = os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_NOCTTY | os.O_CLOEXEC
_OPEN_FOLDER = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC


@dataclass(frozen=True, slots=True)
class PlainFile:
    """A regular file found in a folder: its name as the OS gave it, and when it changed."""

    name: str  # undecodable bytes kept as surrogates (os.fsdecode); show it with shown_name
    modified: float


@contextmanager
def open_folder(base: str | os.PathLike[str], parts: Sequence[str] = ()) -> Iterator[int | None]:
    """A descriptor of the folder ``base/parts…``, or None when it is missing, unreadable or
    reached through a symbolic link below ``base`` (``base`` itself is configuration, and may
    well be a link to a share). Closed on leaving the block."""
    try:
        fd: int | None = os.open(base, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    except (OSError, ValueError):  # ValueError: a NUL in the name
        fd = None
    for part in parts:
        if fd is None:
            break
        inner = _open_at(part, _OPEN_FOLDER, fd)
        os.close(fd)
        fd = inner
    try:
        yield fd
    finally:
        if fd is not None:
            os.close(fd)


def open_plain(name: str, folder: int) -> BinaryIO | None:
    """The regular file ``name`` in the open ``folder``, open for reading; None for a symbolic
    link, FIFO, device, socket or folder, or when there is nothing readable by that name."""
    fd = _open_at(name, _OPEN_FILE, folder)
    if fd is None:
        return None
    try:
        regular = stat.S_ISREG(os.fstat(fd).st_mode)
    except OSError:
        regular = False
    if not regular:
        os.close(fd)
        return None
    return os.fdopen(fd, "rb")


def read_start(name: str, folder: int, limit_bytes: int) -> bytes | None:
    """At most ``limit_bytes + 1`` bytes from the start of the regular file ``name`` (one more
    than the limit tells the caller there was more), or None as ``open_plain``."""
    handle = open_plain(name, folder)
    if handle is None:
        return None
    with handle:
        try:
            return handle.read(limit_bytes + 1)
        except OSError:
            return None


def plain_files(folder: int, max_scanned: int) -> tuple[list[PlainFile], bool]:
    """The regular, not hidden files of ``folder`` (never following a link), and whether the
    whole folder was looked at: at most ``max_scanned`` entries are, so a folder of a million
    files costs no more than one of ``max_scanned``."""
    found: list[PlainFile] = []
    scanned = 0
    try:
        with os.scandir(folder) as entries:
            for entry in entries:
                scanned += 1
                if scanned > max_scanned:
                    return found, False
                if entry.name.startswith(".") or not entry.is_file(follow_symlinks=False):
                    continue
                modified = entry.stat(follow_symlinks=False).st_mtime
                found.append(PlainFile(entry.name, modified))
    except OSError:
        pass  # the folder went away (a share unmounted) while it was read: what was found stands
    return found, True


def shown_name(name: str) -> str:
    """A file name for a page: as it is when it is valid UTF-8, otherwise with each byte that
    is not shown as ``\\xNN`` (a page cannot hold undecodable bytes; this also keeps them
    apart from a real character)."""
    raw = os.fsencode(name)
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        return raw.decode("utf-8", errors="backslashreplace")


def _open_at(name: str, flags: int, folder: int) -> int | None:
    try:
        return os.open(name, flags, dir_fd=folder)
    except (OSError, ValueError):  # ENAMETOOLONG, ELOOP (a link), ENOENT, EACCES…; NUL
        return None
