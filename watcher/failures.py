"""What a failure while taking a manifest means: passing (try the claimed file again later) or
not (reject it, saying so).

Passing: the database away or restarting, a full disk, an I/O error or a share that went away
under intake. Anything else that goes wrong with a claimed manifest is taken to come from the
manifest itself (a bug it triggers included), so it ends as a rejection with an error file
rather than as a file stuck in ``.vidgen/processing``.
"""

from __future__ import annotations

import errno
from pathlib import Path

from vidgen.errors import Problem, VidgenError

_PASSING_ERRNOS = frozenset(
    {
        errno.ENOSPC,
        errno.EDQUOT,
        errno.EIO,
        errno.EAGAIN,
        errno.EBUSY,
        errno.EINTR,
        errno.ENOMEM,
        errno.ENOLCK,
        errno.ETIMEDOUT,
        errno.ESTALE,
        errno.ENETDOWN,
        errno.ENETUNREACH,
        errno.EHOSTDOWN,
        errno.EHOSTUNREACH,
        errno.ECONNRESET,
        errno.ECONNABORTED,
    }
)
# Gone files and folders are passing only while the inbox itself is away (a share unmounted).
_GONE_ERRNOS = frozenset({errno.ENOENT, errno.ENOTDIR})


def is_passing(exc: BaseException, inbox: Path) -> bool:
    """Whether trying again later can succeed where this failed."""
    for cause in _chain(exc):
        if isinstance(cause, VidgenError) and cause.retryable:
            return True
        if isinstance(cause, OSError) and cause.errno in _PASSING_ERRNOS:
            return True
        if isinstance(cause, OSError) and cause.errno in _GONE_ERRNOS and not inbox.is_dir():
            return True
    return False


def reason_of(exc: BaseException) -> str:
    """The failure in a few words: the user message, or the system's words for an OSError."""
    if isinstance(exc, VidgenError):
        return exc.user_message
    if isinstance(exc, OSError) and exc.strerror:
        return exc.strerror
    return f"{type(exc).__name__}: {exc}"


def internal_error(exc: BaseException) -> Problem:
    """A problem of the whole file for a failure that is vidgen's, not the manifest's words."""
    return Problem(
        "",
        1,
        f"vidgen could not take this manifest: an internal error ({type(exc).__name__}); "
        "vidgen's log has the details",
    )


def _chain(exc: BaseException) -> list[BaseException]:
    found: list[BaseException] = []
    current: BaseException | None = exc
    while current is not None and current not in found:
        found.append(current)
        current = current.__cause__ or current.__context__
    return found
