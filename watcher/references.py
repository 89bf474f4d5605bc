"""Files a manifest names: where they may lie (inside its inbox, nowhere else) and what they
must be (an image, a video).

A path is relative to the manifest, i.e. to the inbox folder it was dropped in; absolute paths,
``..`` and symbolic links leading out of the inbox are refused, so a manifest can never make
vidgen read (and copy into storage) a file its author could not drop there.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from vidgen.errors import FFmpegError
from vidgen.ffmpeg import MediaInfo, probe

# Leading bytes of the image formats ComfyUI's image loader reads.
_IMAGE_SIGNATURES: tuple[tuple[int, bytes], ...] = (
    (0, b"\x89PNG\r\n\x1a\n"),
    (0, b"\xff\xd8\xff"),
    (0, b"GIF87a"),
    (0, b"GIF89a"),
    (0, b"BM"),
    (0, b"II*\x00"),
    (0, b"MM\x00*"),
    (8, b"WEBP"),
)
_WINDOWS_ABSOLUTE = re.compile(r"^[A-Za-z]:")


@dataclass(frozen=True, slots=True)
class Located:
    """Where a referenced file is, or why it cannot be used (``missing``: not there yet)."""

    path: Path | None
    problem: str | None = None
    missing: bool = False


def locate(text: str, inbox: Path) -> Located:
    """The file ``text`` names inside ``inbox``, after every check of where it may lie."""
    # Windows users write refs\\girl.png; a backslash is a separator to them, never a name.
    relative = text.replace("\\", "/")
    if "\x00" in relative:
        return Located(None, "is not a usable file name")
    if relative.startswith("/") or _WINDOWS_ABSOLUTE.match(relative):
        return Located(None, "must be a path relative to the manifest, not an absolute path")
    parts = PurePosixPath(relative).parts
    if ".." in parts:
        return Located(None, "must not contain '..': files must lie inside the inbox folder")
    candidate = inbox.joinpath(*parts)
    try:
        candidate.lstat()
        real = candidate.resolve(strict=True)
        inbox_real = inbox.resolve(strict=True)
    except (FileNotFoundError, NotADirectoryError):
        return Located(None, f"{text}: no such file in the inbox folder", missing=True)
    except (OSError, RuntimeError) as exc:
        return Located(None, f"{text} cannot be read ({exc})")
    if not real.is_relative_to(inbox_real):
        return Located(None, "is a symbolic link pointing outside the inbox folder")
    if not real.is_file():
        return Located(None, "is a folder, not a file")
    return Located(candidate)


def image_problem(path: Path) -> str | None:
    """Why ``path`` is not an image ComfyUI can load, or None."""
    try:
        with path.open("rb") as handle:
            head = handle.read(16)
    except OSError as exc:
        return f"cannot be read ({exc.strerror or exc})"
    if any(head[offset : offset + len(magic)] == magic for offset, magic in _IMAGE_SIGNATURES):
        return None
    return "is not an image (expected PNG, JPEG, WebP, GIF, BMP or TIFF)"


def probe_video(path: Path) -> MediaInfo | str:
    """What ffprobe says about the video, or why it is not one."""
    try:
        return probe(path)
    except FFmpegError as exc:
        return exc.user_message
