"""Files a manifest names: where they may lie (inside its inbox, reached without any symbolic
link), how big they may be (``limits`` in config.yaml) and what they must be (an image, a video).

A path is relative to the manifest, i.e. to the inbox folder it was dropped in; absolute paths
and ``..`` are refused, and the file is opened once without following links
(``watcher.safe_open``), so a manifest can never make vidgen read a file its author could not
drop there. ``ReferenceReader`` reads in one of two ways:

- without a staging folder (before the claim): it opens the file, looks at its type, size, date
  and first bytes, and closes it. Enough to decide whether a manifest must wait for its files;
  nothing is copied.
- with one (after the claim, and for ``vidgen validate``): it copies each file into that folder
  of vidgen's own while hashing and counting what it reads from that one open file, then
  inspects only the copy: an image's header (format, pixels) or a video's probe, with ffmpeg
  restricted to plain containers. What is checked is therefore exactly what is stored.
"""

from __future__ import annotations

import hashlib
import os
import re
from dataclasses import dataclass, replace
from enum import StrEnum
from pathlib import Path, PurePosixPath
from typing import BinaryIO

from vidgen.config import LimitSettings
from vidgen.errors import FFmpegError
from vidgen.ffmpeg import MediaInfo, probe
from vidgen.safe_files import Refused, open_below
from watcher.image_header import EXTENSIONS, HEAD_BYTES, ImageKind, image_kind, image_size

_WINDOWS_ABSOLUTE = re.compile(r"^[A-Za-z]:")
_BLOCK = 1024 * 1024
_NOT_AN_IMAGE = "is not an image (expected PNG, JPEG, WebP, GIF, BMP or TIFF)"
# The stored copy of a video keeps its extension when it fits the container, else gets this one.
_VIDEO_EXTENSIONS = {
    "mov": ("mp4", ("mp4", "m4v", "mov", "3gp", "3g2")),
    "matroska": ("mkv", ("mkv", "webm")),
    "avi": ("avi", ("avi",)),
    "gif": ("gif", ("gif",)),
}


class Kind(StrEnum):
    IMAGE = "image"
    VIDEO = "video"


@dataclass(frozen=True, slots=True)
class Staged:
    """vidgen's own copy of a referenced file, in the claim's staging folder."""

    path: Path
    sha256: str
    size: int
    extension: str  # what the stored copy is named with: png, jpg, mp4, mkv…
    media: MediaInfo | None = None  # a video's probe of the copy


@dataclass(frozen=True, slots=True)
class Reference:
    """A file a manifest names, as far as it was read; ``problem`` (without the file's name)
    says why it cannot be used, ``missing`` that it is not there (yet)."""

    text: str  # as the manifest writes it
    path: Path | None = None  # inside the inbox
    size: int = 0
    mtime: float = 0.0
    staged: Staged | None = None
    problem: str | None = None
    missing: bool = False

    @property
    def message(self) -> str:
        separator = ": " if self.missing else " "
        return f"{self.text}{separator}{self.problem}"


def relative_parts(text: str) -> tuple[str, ...] | str:
    """The folders and name ``text`` means below the inbox, or why it may not be used."""
    # Windows users write refs\\girl.png; a backslash is a separator to them, never a name.
    relative = text.replace("\\", "/")
    if "\x00" in relative:
        return "is not a usable file name"
    if relative.startswith("/") or _WINDOWS_ABSOLUTE.match(relative):
        return "must be a path relative to the manifest, not an absolute path"
    parts = tuple(p for p in PurePosixPath(relative).parts if p != ".")
    if ".." in parts:
        return "must not contain '..': files must lie inside the inbox folder"
    return parts or "names no file"


class ReferenceReader:
    """Reads the files one manifest names, into ``staging`` when there is one."""

    def __init__(self, inbox: Path, limits: LimitSettings, staging: Path | None = None) -> None:
        self.inbox = inbox
        self.limits = limits
        self.staging = staging
        self._seen: dict[tuple[str, ...], Reference] = {}
        self._total = 0

    def read(self, text: str, kind: Kind) -> Reference:
        """The file ``text`` names, opened once and checked; the same file named again is
        the same answer (and counts once towards ``limits.manifestBytes``).

        Raises:
            OSError: with a staging folder, the inbox or the copy failed (a share away, a full
                disk): worth another try later.
        """
        parts = relative_parts(text)
        if isinstance(parts, str):
            return Reference(text, problem=parts)
        if parts in self._seen:
            return replace(self._seen[parts], text=text)
        path = self.inbox.joinpath(*parts)
        try:
            opened = open_below(self.inbox, parts)
        except Refused as refused:
            found = Reference(text, path, problem=refused.reason, missing=refused.missing)
        except OSError as exc:  # the inbox itself is away
            if self.staging is not None:
                raise  # after the claim: intake tries the claimed manifest again later
            found = Reference(text, path, problem=f"cannot be read ({exc.strerror})", missing=True)
        else:
            with os.fdopen(opened.fd, "rb") as handle:
                found = self._checked(
                    Reference(text, path, opened.size, opened.mtime), kind, handle
                )
        self._seen[parts] = found
        return found

    def _checked(self, found: Reference, kind: Kind, handle: BinaryIO) -> Reference:
        problem = self._size_problem(found.size, kind)
        if problem is None and kind is Kind.IMAGE and image_kind(handle.read(HEAD_BYTES)) is None:
            problem = _NOT_AN_IMAGE
        if problem is not None:
            return replace(found, problem=problem)
        if self.staging is not None:
            found = self._stage(found, kind, handle, self.staging)
        if found.problem is None:
            self._total += found.size
        return found

    def _size_problem(self, size: int, kind: Kind) -> str | None:
        limit = self.limits.image_bytes if kind is Kind.IMAGE else self.limits.video_bytes
        if size > limit:
            what, key = (
                ("a referenced image", "imageBytes")
                if kind is Kind.IMAGE
                else ("an imported video", "videoBytes")
            )
            return (
                f"is {size_words(size)}; {what} may be at most {size_words(limit)} (limits.{key})"
            )
        total = self._total + size
        if total > self.limits.manifest_bytes:
            return (
                f"brings the files this manifest names to {size_words(total)}; together they "
                f"may be at most {size_words(self.limits.manifest_bytes)} (limits.manifestBytes)"
            )
        return None

    def _stage(self, found: Reference, kind: Kind, handle: BinaryIO, staging: Path) -> Reference:
        """Copy from the open file (hashing, counting), then look at the copy alone.

        Raises:
            OSError: the copy failed (a full disk, a share gone): worth another try later.
        """
        assert found.path is not None  # an opened file has its path
        handle.seek(0)
        folder = staging / str(len(self._seen))
        folder.mkdir(parents=True, exist_ok=True)
        copy = folder / found.path.name
        limit = self.limits.image_bytes if kind is Kind.IMAGE else self.limits.video_bytes
        copied = _copy_counted(handle, copy, limit)
        if copied is None:
            return replace(found, problem=f"grew past {size_words(limit)} while vidgen read it")
        sha256, size = copied
        found = replace(found, size=size)
        if kind is Kind.IMAGE:
            return self._image(found, copy, sha256)
        return self._video(found, copy, sha256)

    def _image(self, found: Reference, copy: Path, sha256: str) -> Reference:
        with copy.open("rb") as handle:
            kind = image_kind(handle.read(HEAD_BYTES))
            if kind is None:
                return replace(found, problem=_NOT_AN_IMAGE)
            size = image_size(handle, kind)
        if size is None:
            return replace(
                found, problem=f"is not a readable {kind.name} image: its header is damaged"
            )
        if size.pixels > self.limits.image_pixels:
            return replace(
                found,
                problem=(
                    f"is {size.width}x{size.height} pixels ({pixel_words(size.pixels)}); a "
                    f"referenced image may have at most {pixel_words(self.limits.image_pixels)} "
                    "(limits.imagePixels)"
                ),
            )
        extension = _image_extension(found.path, kind)
        return replace(found, staged=Staged(copy, sha256, found.size, extension))

    def _video(self, found: Reference, copy: Path, sha256: str) -> Reference:
        try:
            info = probe(copy, untrusted=True)
        except FFmpegError as exc:
            said = exc.user_message
            own = said.startswith(f"{copy.name} ")
            problem = said.removeprefix(f"{copy.name} ") if own else f"cannot be used: {said}"
            return replace(found, problem=problem)
        pixels = info.width * info.height
        if pixels > self.limits.video_pixels:
            return replace(
                found,
                problem=(
                    f"is {info.width}x{info.height} pixels per frame; an imported video may "
                    f"have at most {pixel_words(self.limits.video_pixels)} per frame "
                    "(limits.videoPixels)"
                ),
            )
        extension = _video_extension(found.path, info.format_name)
        return replace(found, staged=Staged(copy, sha256, found.size, extension, info))


def size_words(size: int) -> str:
    """A size as a person reads it: ``512 bytes``, ``64.0 kB``, ``52.4 MB``, ``2.1 GB``."""
    for unit, factor in (("GB", 1e9), ("MB", 1e6), ("kB", 1e3)):
        if size >= factor:
            return f"{size / factor:.1f} {unit}"
    return f"{size} bytes"


def pixel_words(count: int) -> str:
    """``256.0 megapixels``, or ``4,096 pixels`` below a million."""
    return f"{count / 1e6:.1f} megapixels" if count >= 1_000_000 else f"{count:,} pixels"


def _copy_counted(source: BinaryIO, target: Path, limit: int) -> tuple[str, int] | None:
    """Copy ``source`` to ``target``, hashing as it goes: (sha256, size), or None (and no copy)
    once more than ``limit`` bytes came."""
    digest = hashlib.sha256()
    size = 0
    with target.open("xb") as out:
        while block := source.read(_BLOCK):
            size += len(block)
            if size > limit:
                break
            digest.update(block)
            out.write(block)
        else:
            out.flush()
            os.fsync(out.fileno())  # a recorded reference must survive a power cut
            return digest.hexdigest(), size
    target.unlink()
    return None


def _image_extension(path: Path | None, kind: ImageKind) -> str:
    given = path.suffix.lstrip(".").lower() if path is not None else ""
    return given if given in EXTENSIONS[kind.extension] else kind.extension


def _video_extension(path: Path | None, format_name: str) -> str:
    given = path.suffix.lstrip(".").lower() if path is not None else ""
    family = next((f for f in _VIDEO_EXTENSIONS if f in format_name.split(",")), "mov")
    default, fitting = _VIDEO_EXTENSIONS[family]
    return given if given in fitting else default


__all__ = ["Kind", "Reference", "ReferenceReader", "Staged", "relative_parts"]
