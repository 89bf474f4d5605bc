"""Opening a file inside an inbox so that what is read is that file and nothing a symbolic link
leads to, even if someone swaps a link in while vidgen reads.

Checking a path and opening it later is a race: between the two a file (or any folder on the
way) can be replaced by a link to, say, the database. So the file is opened once, walking from
the inbox one folder at a time with ``dir_fd``, each folder opened ``O_DIRECTORY | O_NOFOLLOW``
and the file itself ``O_NOFOLLOW | O_NONBLOCK``; a link anywhere fails the open instead of
being followed. Every later check (``fstat``: a regular file, its size) and every read (magic
bytes, hash, the copy into storage) then uses that one descriptor.

Where the system lacks ``O_NOFOLLOW`` or ``dir_fd`` (Windows), the path is resolved and checked
to lie inside the inbox, opened, and the opened file compared with the checked one (device and
inode). That narrows the race to the instant between the check and the open; it cannot close
it there.
"""

from __future__ import annotations

import errno
import os
import stat
from dataclasses import dataclass
from pathlib import Path

_NOFOLLOW = getattr(os, "O_NOFOLLOW", 0)
_DIRECTORY = getattr(os, "O_DIRECTORY", 0)
_NONBLOCK = getattr(os, "O_NONBLOCK", 0)  # a FIFO named like a file must not block the open
_CLOEXEC = getattr(os, "O_CLOEXEC", 0)
_BINARY = getattr(os, "O_BINARY", 0)
WALKS_WITHOUT_LINKS = bool(_NOFOLLOW and _DIRECTORY) and os.open in os.supports_dir_fd
_FILE_FLAGS = os.O_RDONLY | _NOFOLLOW | _NONBLOCK | _CLOEXEC | _BINARY
_FOLDER_FLAGS = os.O_RDONLY | _DIRECTORY | _NOFOLLOW | _CLOEXEC
_REAL_FILES = "vidgen reads only real files inside the inbox folder"


class Refused(Exception):
    """The file cannot be opened safely; ``reason`` says why in words, ``missing`` that it is
    (not yet) there."""

    def __init__(self, reason: str, *, missing: bool = False) -> None:
        super().__init__(reason)
        self.reason = reason
        self.missing = missing


@dataclass(frozen=True, slots=True)
class Opened:
    """An open regular file and what ``fstat`` said of it when it was opened."""

    fd: int
    size: int
    mtime: float


def open_below(root: Path, parts: tuple[str, ...]) -> Opened:
    """Open ``root/parts…`` for reading, refusing symbolic links on the way and at the end.

    Raises:
        Refused: missing, a link, a folder, not a regular file, or unreadable.
        OSError: the inbox itself cannot be read (its share is away): the caller decides.
    """
    if not WALKS_WITHOUT_LINKS:
        return _open_checked(root, parts)
    folder = os.open(root, os.O_RDONLY | _DIRECTORY | _CLOEXEC)
    try:
        for index, part in enumerate(parts[:-1]):
            inner = _open_part(part, _FOLDER_FLAGS, folder, parts[: index + 1])
            os.close(folder)
            folder = inner
        fd = _open_part(parts[-1], _FILE_FLAGS, folder, ())
    finally:
        os.close(folder)
    return _regular(fd)


def open_file(path: Path) -> Opened:
    """Open a file directly inside a folder (a manifest) without following a link."""
    return open_below(path.parent, (path.name,))


def _open_part(part: str, flags: int, folder: int, shown: tuple[str, ...]) -> int:
    """``shown``: the folder being opened, as the manifest names it (empty for the file)."""
    try:
        return os.open(part, flags, dir_fd=folder)
    except FileNotFoundError:
        raise Refused("no such file in the inbox folder", missing=True) from None
    except OSError as exc:
        raise Refused(_why(exc, part, folder, shown)) from None


def _why(exc: OSError, part: str, folder: int, shown: tuple[str, ...]) -> str:
    if exc.errno in (errno.ELOOP, errno.EMLINK, errno.ENOTDIR):
        try:
            mode = os.lstat(part, dir_fd=folder).st_mode
        except OSError:
            mode = 0
        if stat.S_ISLNK(mode) and not shown:
            return f"is a symbolic link; {_REAL_FILES}"
        if stat.S_ISLNK(mode):
            return f"is reached through a symbolic link ({'/'.join(shown)}); {_REAL_FILES}"
        return f"cannot be opened: {'/'.join(shown)} is not a folder"
    if exc.errno == errno.EISDIR:
        return "is a folder, not a file"
    return f"cannot be read ({exc.strerror or exc})"


def _regular(fd: int) -> Opened:
    info = os.fstat(fd)
    if stat.S_ISREG(info.st_mode):
        return Opened(fd, info.st_size, info.st_mtime)
    os.close(fd)
    if stat.S_ISDIR(info.st_mode):
        raise Refused("is a folder, not a file")
    raise Refused("is not a regular file (a pipe, socket or device)")


def _open_checked(root: Path, parts: tuple[str, ...]) -> Opened:
    """The fallback without ``O_NOFOLLOW``/``dir_fd`` (see the module's docstring)."""
    candidate = root.joinpath(*parts)
    try:
        real = candidate.resolve(strict=True)
        checked = real.stat()
    except (FileNotFoundError, NotADirectoryError):
        raise Refused("no such file in the inbox folder", missing=True) from None
    except (OSError, RuntimeError) as exc:
        raise Refused(f"cannot be read ({exc})") from None
    if real != root.resolve().joinpath(*parts):
        raise Refused(f"is reached through a symbolic link; {_REAL_FILES}")
    try:
        fd = os.open(real, _FILE_FLAGS)
    except OSError as exc:
        raise Refused(f"cannot be read ({exc.strerror or exc})") from None
    opened = os.fstat(fd)
    if (opened.st_dev, opened.st_ino) != (checked.st_dev, checked.st_ino):
        os.close(fd)
        raise Refused("changed while vidgen opened it; it is read again shortly", missing=True)
    return _regular(fd)
