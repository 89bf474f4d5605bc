"""The contact sheet of a clip's variations: every variation playing in one grid, each tile
labelled with what tells it apart (``seed 123``, ``cfg 7 · steps 25``).

One ffmpeg run: the variations are scaled into tiles, labelled with ``drawtext``, placed with
``xstack`` and the grid is split into two outputs, the video and a PNG of its middle frame
(``select``). Labels need a font file; the first one found among the system's fonts is used
(Noto Sans CJK or DejaVu Sans when installed), and a system without any says so.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

from stages.encode import output_args
from vidgen.errors import FFmpegError
from vidgen.ffmpeg import file_arg, filter_number
from vidgen.specs import OutputFormat, Quality

__all__ = ["SheetRun", "SheetTile", "find_font", "grid_of", "sheet_run"]

FONT_FOLDERS = (Path("/usr/share/fonts"), Path("/usr/local/share/fonts"))
# Preferred first: Noto Sans CJK also draws Korean, Chinese and Japanese.
_PREFERRED_FONTS = ("NotoSansCJK-Regular.ttc", "DejaVuSans.ttf", "LiberationSans-Regular.ttf")
_FONT_SUFFIXES = (".ttf", ".otf", ".ttc")
# A sheet is for looking at on a screen: no side above this, tiles scaled down to fit.
MAX_SHEET_SIDE = 2048


@dataclass(frozen=True, slots=True)
class SheetTile:
    """One variation on the sheet: its video and its label."""

    video: Path
    label: str


@dataclass(frozen=True, slots=True)
class SheetRun:
    """The one ffmpeg run that writes ``video`` and ``still`` (the middle frame)."""

    args: tuple[str, ...]
    video: Path
    still: Path
    columns: int
    rows: int
    tile: tuple[int, int]
    duration_sec: float
    filter_graph: str


def find_font(folders: Iterable[Path] = FONT_FOLDERS) -> Path:
    """A font file for the labels: a preferred one, else the first found (by name).

    Raises:
        FFmpegError: no font is installed.
    """
    found = sorted(
        path
        for folder in folders
        if folder.is_dir()
        for path in folder.rglob("*")
        if path.suffix.lower() in _FONT_SUFFIXES and path.is_file()
    )
    for name in _PREFERRED_FONTS:
        for path in found:
            if path.name == name:
                return path
    if not found:
        raise FFmpegError(
            "no font for the contact sheet's labels: install fonts-dejavu-core or fonts-noto-cjk"
        )
    return found[0]


def grid_of(count: int) -> tuple[int, int]:
    """Columns and rows for ``count`` tiles: as square as it gets: 4 make 2 by 2, 6 make 3 by 2."""
    columns = math.ceil(math.sqrt(count))
    return columns, math.ceil(count / columns)


def sheet_run(
    tiles: Sequence[SheetTile],
    *,
    size: tuple[int, int],
    fps: float,
    frames: int,
    video: Path,
    still: Path,
    font: Path,
) -> SheetRun:
    """The run that shows ``tiles`` (each ``frames`` frames of ``size`` at ``fps``) in a grid."""
    columns, rows = grid_of(len(tiles))
    tile_w, tile_h = _tile_size(size, columns, rows)
    duration = frames / fps
    chains = []
    for index, tile in enumerate(tiles):
        font_size = _font_size(tile.label, tile_w, tile_h)
        margin = max(3, font_size // 3)
        label = (
            f"drawtext=fontfile={_value(str(font))}:text={_value(tile.label)}:expansion=none"
            f":fontsize={font_size}:fontcolor=white:box=1:boxcolor=black@0.6"
            f":boxborderw={margin}:x={margin}:y=h-th-{margin}"
        )
        chains.append(
            f"[{index}:v]fps={filter_number(fps)},"
            f"scale={tile_w}:{tile_h}:force_original_aspect_ratio=decrease:flags=lanczos,"
            f"pad={tile_w}:{tile_h}:(ow-iw)/2:(oh-ih)/2,setsar=1,format=yuv420p,{label}[t{index}]"
        )
    layout = "|".join(
        f"{(i % columns) * tile_w}_{(i // columns) * tile_h}" for i in range(len(tiles))
    )
    stacked = "".join(f"[t{i}]" for i in range(len(tiles)))
    chains.append(
        f"{stacked}xstack=inputs={len(tiles)}:layout={layout}:fill=black:shortest=1,"
        f"trim=duration={filter_number(duration)},split=2[sheet][frames]"
    )
    # The still is the middle frame: where AnimateDiff's motion is well under way.
    chains.append(f"[frames]select=eq(n\\,{frames // 2})[still]")
    graph = ";".join(chains)
    inputs = [arg for tile in tiles for arg in ("-i", file_arg(tile.video))]
    args = (
        *inputs,
        "-filter_complex",
        graph,
        "-map",
        "[sheet]",
        *output_args(OutputFormat.MP4, Quality.STANDARD),
        file_arg(video),
        "-map",
        "[still]",
        "-frames:v",
        "1",
        "-update",
        "1",
        file_arg(still),
    )
    return SheetRun(args, video, still, columns, rows, (tile_w, tile_h), duration, graph)


def _font_size(label: str, tile_w: int, tile_h: int) -> int:
    """A sixteenth of the tile's height, smaller where the label would not fit its width (a
    glyph of these fonts is at most about 0.6 of the font size wide)."""
    fitting = int((tile_w - 8) / (0.6 * max(1, len(label))))
    return max(8, min(max(12, tile_h // 16), fitting))


def _tile_size(size: tuple[int, int], columns: int, rows: int) -> tuple[int, int]:
    """The clip's own size, scaled down (even sides) when the grid would exceed the limit."""
    width, height = size
    scale = min(1.0, MAX_SHEET_SIDE / (width * columns), MAX_SHEET_SIDE / (height * rows))
    return max(2, int(width * scale) // 2 * 2), max(2, int(height * scale) // 2 * 2)


def _value(text: str) -> str:
    """``text`` as one filter option value inside a filter graph: escaped for the option
    parser (``\\ ' :``), then for the graph parser (``\\ ' [ ] , ;``)."""
    for char in "\\':":
        text = text.replace(char, "\\" + char)
    for char in "\\'[],;":
        text = text.replace(char, "\\" + char)
    return text
