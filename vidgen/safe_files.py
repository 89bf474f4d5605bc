"""Reading files and folders other people can write to (an inbox on a household share, its
``rejected/`` folder) without being fooled or stalled by what they put there.

Checking a path and opening it later is a race: between the two a file (or any folder on the
way) can be replaced by a link to, say, the database. So a file is opened once, walking from the
configured folder one folder at a time with ``dir_fd``, each folder opened ``O_DIRECTORY |
O_NOFOLLOW`` and the file itself ``O_NOFOLLOW | O_NONBLOCK``: a link anywhere fails the open
instead of being followed, and a FIFO without a writer opens at once instead of blocking.
Every later check (``fstat``: a regular file, its size) and every read then uses that one
descriptor, so nothing swapped in after the open counts. Reads and listings are bounded.

Where the system lacks ``O_NOFOLLOW`` or ``dir_fd`` (Windows), ``open_below`` resolves the path,
checks that it lies inside the folder, opens it and compares the opened file with the checked
one (device and inode). That narrows the race to the instant between the check and the open; it
cannot close it there.

Intake uses ``open_below`` (which says why it refused); the status page ``open_folder``,
``open_plain``, ``read_start`` and ``plain_files`` (which quietly skip what they will not read).
"""

from __future__ import annotations

import errno
import os
import shutil
import stat
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

_NOFOLLOW = getattr(os, "O_NOFOLLOW", 0)
_DIRECTORY = getattr(os, "O_DIRECTORY", 0)
_NONBLOCK = getattr(os, "O_NONBLOCK", 0)  # a FIFO named like a file must not block the open
_NOCTTY = getattr(os, "O_NOCTTY", 0)  # a terminal opened by mistake must not become ours
_CLOEXEC = getattr(os, "O_CLOEXEC", 0)
_BINARY = getattr(os, "O_BINARY", 0)
WALKS_WITHOUT_LINKS = bool(_NOFOLLOW and _DIRECTORY) and os.open in os.supports_dir_fd
_FILE_FLAGS = os.O_RDONLY | _NOFOLLOW | _NONBLOCK | _NOCTTY | _CLOEXEC | _BINARY
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


@dataclass(frozen=True, slots=True)
class PlainFile:
    """A regular file found in a folder: its name as the OS gave it, and when it changed."""

    name: str  # undecodable bytes kept as surrogates (os.fsdecode); show it with shown_name
    modified: float


def open_below(root: Path, parts: tuple[str, ...]) -> Opened:
    """Open ``root/parts…`` for reading, refusing symbolic links on the way and at the end.

    Raises:
        Refused: missing, a link, a folder, not a regular file, or unreadable.
        OSError: ``root`` itself cannot be read (its share is away): the caller decides.
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


@contextmanager
def open_folder(base: str | os.PathLike[str], parts: Sequence[str] = ()) -> Iterator[int | None]:
    """A descriptor of the folder ``base/parts…``, or None when it is missing, unreadable or
    reached through a symbolic link below ``base`` (``base`` itself is configuration, and may
    well be a link to a share). Closed on leaving the block."""
    try:
        fd: int | None = os.open(base, os.O_RDONLY | _DIRECTORY | _CLOEXEC)
    except (OSError, ValueError):  # ValueError: a NUL in the name
        fd = None
    for part in parts:
        if fd is None:
            break
        inner = _quiet_open(part, _FOLDER_FLAGS, fd)
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
    fd = _quiet_open(name, _FILE_FLAGS, folder)
    if fd is None:
        return None
    try:
        return os.fdopen(_regular(fd).fd, "rb")
    except (Refused, OSError):
        return None


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


def free_bytes(folder: Path) -> int:
    """Free space where ``folder`` is, or would be made (the nearest folder above that exists)."""
    existing = next(p for p in (folder, *folder.parents) if p.exists())
    return shutil.disk_usage(existing).free


def shown_name(name: str | os.PathLike[str]) -> str:
    """A file name (or path) fit for a page, a log line, an error file or a database column:
    bytes that are not UTF-8 (a name from an old Windows or Mac share) shown as ``\\xNN``."""
    return os.fsencode(name).decode("utf-8", "backslashreplace")


def _open_part(part: str, flags: int, folder: int, shown: tuple[str, ...]) -> int:
    """``shown``: the folder being opened, as the manifest names it (empty for the file)."""
    try:
        return os.open(part, flags, dir_fd=folder)
    except FileNotFoundError:
        raise Refused("no such file in the inbox folder", missing=True) from None
    except OSError as exc:
        raise Refused(_why(exc, part, folder, shown)) from None


def _quiet_open(name: str, flags: int, folder: int) -> int | None:
    try:
        return os.open(name, flags, dir_fd=folder)
    except (OSError, ValueError):  # ENAMETOOLONG, ELOOP (a link), ENOENT, EACCES…; NUL
        return None


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
    """``fd`` if it is a regular file (closed otherwise)."""
    try:
        info = os.fstat(fd)
    except OSError:
        os.close(fd)
        raise
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
