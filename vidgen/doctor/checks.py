"""`vidgen doctor`: one command to run when something is off. Each line says ok, warning or
error about one thing (FFmpeg and its encoders, the database and its migrations, each ComfyUI
backend, each inbox, free space, the status page's binding) and, when it is not ok, what to do.
Nothing is changed: no folder made, no migration applied, no prompt sent.
"""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

from status.security import check_binding, is_loopback
from vidgen.config import InboxSettings, Settings
from vidgen.db.session import (
    MigrationState,
    migration_state,
    open_database,
    sqlite_file,
    url_without_password,
)
from vidgen.doctor.comfyui import Finding, Level, check_backends
from vidgen.errors import ConfigError, VidgenError
from vidgen.ffmpeg import ffmpeg_encoders, ffmpeg_version
from vidgen.safe_files import free_bytes

ENCODERS = ("libx264", "libx265", "libvpx-vp9", "gif")
# Filesystems on which inotify sees no other machine's writes (docs/intake-notes.md).
NETWORK_FILESYSTEMS = frozenset(
    {"nfs", "nfs4", "cifs", "smb3", "smbfs", "fuse.sshfs", "9p", "afs", "ceph", "fuse.rclone"}
)
MOUNTS = Path("/proc/mounts")


def diagnose(settings: Settings, *, mounts: Path = MOUNTS) -> list[Finding]:
    """Every check, in the order a person fixes things."""
    return [
        *_ffmpeg(),
        *_database(settings),
        *check_backends(settings),
        *(f for inbox in settings.inboxes for f in _inbox(inbox, mounts)),
        *_disks(settings),
        _status(settings),
    ]


def _ffmpeg() -> Iterator[Finding]:
    try:
        version, encoders = ffmpeg_version(), ffmpeg_encoders()
    except VidgenError as exc:
        yield Finding(
            Level.ERROR,
            "ffmpeg",
            f"{exc.user_message}: install it (Debian: apt-get install ffmpeg) and put it on PATH",
        )
        return
    missing = [name for name in ENCODERS if name not in encoders]
    if missing:
        yield Finding(
            Level.ERROR,
            "ffmpeg",
            f"{version} lacks the encoders {', '.join(missing)}: install a full build "
            "(Debian's ffmpeg package has them all)",
        )
    else:
        yield Finding(Level.OK, "ffmpeg", f"{version} with {', '.join(ENCODERS)}")
    if shutil.which("ffprobe") is None:
        yield Finding(Level.ERROR, "ffprobe", "not on PATH: it comes with the ffmpeg package")


def _database(settings: Settings) -> Iterator[Finding]:
    subject = f"database {url_without_password(settings.database_url)}"
    file = sqlite_file(settings.database_url)
    if file is not None and not file.exists():
        yield Finding(Level.WARNING, subject, "not made yet: `vidgen run` (or db upgrade) makes it")
        return
    database = open_database(settings.database_url)
    try:
        state = migration_state(database)
    except VidgenError as exc:
        yield Finding(Level.ERROR, subject, f"{exc.user_message}: start it, or fix database.url")
        return
    finally:
        database.dispose()
    yield _migrations(subject, state)


def _migrations(subject: str, state: MigrationState) -> Finding:
    if not state.known:
        return Finding(
            Level.ERROR,
            subject,
            f"at migration {state.current}, which this vidgen does not know (a newer vidgen "
            "migrated it): upgrade vidgen",
        )
    if state.current == state.head:
        return Finding(Level.OK, subject, f"answers, at migration {state.head} (the newest)")
    where = "holds no vidgen tables yet" if state.current is None else f"at {state.current}"
    return Finding(
        Level.WARNING,
        subject,
        f"answers, {where}; the newest migration is {state.head}: run `vidgen db upgrade` "
        "(every start does it too)",
    )


def _inbox(inbox: InboxSettings, mounts: Path) -> Iterator[Finding]:
    subject = f"inbox {inbox.path}"
    if not inbox.path.is_dir():
        yield Finding(
            Level.ERROR,
            subject,
            "missing: create the folder (or mount the share there); vidgen never makes an inbox",
        )
        return
    try:
        with tempfile.NamedTemporaryFile(dir=inbox.path, prefix=".vidgen-doctor-"):
            pass
    except OSError as exc:
        yield Finding(
            Level.ERROR,
            subject,
            f"not writable ({exc.strerror or exc}): vidgen moves each manifest out of it; "
            "give vidgen's user write access, or mount it read-write",
        )
        return
    fstype = filesystem_of(inbox.path, mounts)
    if fstype in NETWORK_FILESYSTEMS and not inbox.polling:
        yield Finding(
            Level.WARNING,
            subject,
            f"on a network filesystem ({fstype}) without polling: set `polling: true` for it in "
            "config.yaml, since inotify sees no other machine's writes",
        )
        return
    watched = "polling" if inbox.polling else "inotify"
    yield Finding(Level.OK, subject, f"exists and is writable ({fstype or 'unknown'}, {watched})")


def filesystem_of(path: Path, mounts: Path = MOUNTS) -> str | None:
    """The type of the filesystem ``path`` lies on: its longest mount point in ``mounts``."""
    try:
        lines = mounts.read_text(encoding="utf-8").splitlines()
    except OSError:
        return None
    real = path.resolve()
    best: tuple[int, str] | None = None
    for line in lines:
        fields = line.split()
        if len(fields) < 3:
            continue
        # /proc/mounts writes a space in a mount point as \040 (and tab, newline, \ likewise)
        point = Path(fields[1].encode().decode("unicode_escape"))
        if real == point or point in real.parents:
            depth = len(point.parts)
            if best is None or depth >= best[0]:
                best = (depth, fields[2])
    return None if best is None else best[1]


def _disks(settings: Settings) -> Iterator[Finding]:
    folders = {"storage": settings.storage} | {
        f"outbox {p}": p for p in dict.fromkeys(settings.all_outboxes)
    }
    limit = settings.min_free_bytes
    for label, folder in folders.items():
        free = free_bytes(folder)
        if free < limit:
            yield Finding(
                Level.WARNING,
                label,
                f"{free / 1e9:.2f} GB free, under minFreeBytes ({limit / 1e9:.2f} GB): free some "
                "space (`vidgen gc` removes what vidgen no longer needs)",
            )
        else:
            yield Finding(Level.OK, label, f"{free / 1e9:.1f} GB free")


def _status(settings: Settings) -> Finding:
    host = settings.status.host
    subject = f"status page {host}:{settings.status.port}"
    try:
        check_binding(settings)
    except ConfigError as exc:
        return Finding(Level.ERROR, subject, exc.user_message)
    if is_loopback(host):
        return Finding(Level.OK, subject, "bound to this machine only")
    return Finding(Level.OK, subject, "reachable from other machines, with a token")
