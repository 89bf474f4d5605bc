"""What an image file says it is before anyone decodes it: its format (from its first bytes) and
its size in pixels (from its header).

A 100 KB PNG can declare 16000 x 16000 pixels, a gigabyte once decoded; the size is read here,
from the few bytes that declare it, so such a file is refused before ComfyUI (or anything else)
decodes it. Only the formats ComfyUI's image loader reads are known: PNG, JPEG, GIF, BMP, TIFF,
WebP.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import BinaryIO, Literal

# Leading bytes of each format: (offset, bytes, format, the extension its stored copy gets).
_SIGNATURES: tuple[tuple[int, bytes, str, str], ...] = (
    (0, b"\x89PNG\r\n\x1a\n", "PNG", "png"),
    (0, b"\xff\xd8\xff", "JPEG", "jpg"),
    (0, b"GIF87a", "GIF", "gif"),
    (0, b"GIF89a", "GIF", "gif"),
    (0, b"BM", "BMP", "bmp"),
    (0, b"II*\x00", "TIFF", "tif"),
    (0, b"MM\x00*", "TIFF", "tif"),
    (8, b"WEBP", "WebP", "webp"),
)
HEAD_BYTES = 16  # enough for every signature
EXTENSIONS = {
    "png": ("png",),
    "jpg": ("jpg", "jpeg"),
    "gif": ("gif",),
    "bmp": ("bmp",),
    "tif": ("tif", "tiff"),
    "webp": ("webp",),
}
_JPEG_FRAMES = {*range(0xC0, 0xC4), *range(0xC5, 0xC8), *range(0xC9, 0xCC), *range(0xCD, 0xD0)}
_JPEG_STANDALONE = {0x01, 0xD8, *range(0xD0, 0xD8)}
_MAX_SEGMENTS = 1000  # a JPEG's header segments; a real one has a dozen
_MAX_TIFF_TAGS = 4096


@dataclass(frozen=True, slots=True)
class ImageKind:
    name: str  # as a person says it: PNG, JPEG…
    extension: str  # the stored copy's


@dataclass(frozen=True, slots=True)
class ImageSize:
    width: int
    height: int

    @property
    def pixels(self) -> int:
        return self.width * self.height


def image_kind(head: bytes) -> ImageKind | None:
    """The format of a file starting with ``head`` (its first ``HEAD_BYTES``), or None."""
    for offset, magic, name, extension in _SIGNATURES:
        if head[offset : offset + len(magic)] == magic:
            return ImageKind(name, extension)
    return None


def image_size(handle: BinaryIO, kind: ImageKind) -> ImageSize | None:
    """The size the header of an image of ``kind`` declares, or None when it is damaged."""
    reader = {
        "png": _png,
        "jpg": _jpeg,
        "gif": _gif,
        "bmp": _bmp,
        "tif": _tiff,
        "webp": _webp,
    }[kind.extension]
    try:
        size = reader(handle)
    except (ValueError, IndexError, OSError):
        return None
    return size if size is not None and size.width > 0 and size.height > 0 else None


def _at(handle: BinaryIO, offset: int, count: int) -> bytes:
    handle.seek(offset)
    data = handle.read(count)
    if len(data) < count:
        raise ValueError("the header ends early")
    return data


def _png(handle: BinaryIO) -> ImageSize | None:
    chunk = _at(handle, 8, 16)  # length, "IHDR", width, height: always the first chunk
    if chunk[4:8] != b"IHDR":
        return None
    return ImageSize(int.from_bytes(chunk[8:12], "big"), int.from_bytes(chunk[12:16], "big"))


def _gif(handle: BinaryIO) -> ImageSize:
    screen = _at(handle, 6, 4)
    return ImageSize(int.from_bytes(screen[0:2], "little"), int.from_bytes(screen[2:4], "little"))


def _bmp(handle: BinaryIO) -> ImageSize:
    header = _at(handle, 14, 12)
    if int.from_bytes(header[0:4], "little") == 12:  # the old OS/2 header: 16-bit sizes
        return ImageSize(
            int.from_bytes(header[4:6], "little"), int.from_bytes(header[6:8], "little")
        )
    width = int.from_bytes(header[4:8], "little", signed=True)
    height = int.from_bytes(header[8:12], "little", signed=True)  # negative: stored top-down
    return ImageSize(abs(width), abs(height))


def _webp(handle: BinaryIO) -> ImageSize | None:
    chunk = _at(handle, 12, 18)
    kind, body = chunk[0:4], chunk[8:]
    if kind == b"VP8 " and body[3:6] == b"\x9d\x01\x2a":
        width = int.from_bytes(body[6:8], "little") & 0x3FFF
        return ImageSize(width, int.from_bytes(body[8:10], "little") & 0x3FFF)
    if kind == b"VP8L" and body[0] == 0x2F:
        bits = int.from_bytes(body[1:5], "little")
        return ImageSize((bits & 0x3FFF) + 1, ((bits >> 14) & 0x3FFF) + 1)
    if kind == b"VP8X":
        width = int.from_bytes(body[4:7], "little") + 1
        return ImageSize(width, int.from_bytes(body[7:10], "little") + 1)
    return None


def _jpeg(handle: BinaryIO) -> ImageSize | None:
    """The first frame header (SOFn) after the segments before it (EXIF, ICC, tables…)."""
    offset = 2
    for _ in range(_MAX_SEGMENTS):
        marker = _at(handle, offset, 4)
        if marker[0] != 0xFF:
            return None
        if marker[1] == 0xFF:  # fill byte
            offset += 1
            continue
        if marker[1] in _JPEG_STANDALONE:
            offset += 2
            continue
        if marker[1] in _JPEG_FRAMES:
            frame = _at(handle, offset + 5, 4)
            return ImageSize(int.from_bytes(frame[2:4], "big"), int.from_bytes(frame[0:2], "big"))
        if marker[1] in (0xD9, 0xDA):  # the image ends, or its data starts, before any frame
            return None
        offset += 2 + int.from_bytes(marker[2:4], "big")
    return None


def _tiff(handle: BinaryIO) -> ImageSize | None:
    """ImageWidth (256) and ImageLength (257) of the first image file directory."""
    order: Literal["little", "big"] = "little" if _at(handle, 0, 2) == b"II" else "big"
    header = _at(handle, 2, 6)
    if int.from_bytes(header[0:2], order) != 42:  # 43 is BigTIFF, which ComfyUI cannot read
        return None
    directory = int.from_bytes(header[2:6], order)
    count = int.from_bytes(_at(handle, directory, 2), order)
    if count > _MAX_TIFF_TAGS:
        return None
    entries = _at(handle, directory + 2, 12 * count)
    found: dict[int, int] = {}
    for start in range(0, len(entries), 12):
        entry = entries[start : start + 12]
        tag, kind = int.from_bytes(entry[0:2], order), int.from_bytes(entry[2:4], order)
        if tag in (256, 257):
            width = 2 if kind == 3 else 4  # SHORT or LONG
            found[tag] = int.from_bytes(entry[8 : 8 + width], order)
    if 256 not in found or 257 not in found:
        return None
    return ImageSize(found[256], found[257])
