"""Contact sheet speed: the one ffmpeg run that makes a clip's sheet (video and PNG), for 4, 9
and 16 variations of 2 s, 512x512, 8 fps clips, 5 runs each; the table gives medians and how
that compares with exporting one clip alone. It goes into docs/benchmarks.md under "Contact
sheet".

    python bench/sheet_bench.py        (from the repository's folder)
"""

from __future__ import annotations

import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

# Run as a script, Python puts bench/ (not the repository) on sys.path; bench.report lives there.
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.report import write_section
from stages.encode import output_args
from stages.sheet import SheetTile, find_font, sheet_run
from vidgen.ffmpeg import file_arg, probe, run
from vidgen.specs import OutputFormat, Quality

ROUNDS = 5
COUNTS = (4, 9, 16)
SIZE = 512
FRAMES = 16


def make_clip(path: Path) -> Path:
    source = f"testsrc2=size={SIZE}x{SIZE}:rate=8:duration={FRAMES / 8}"
    encoding = ["-c:v", "libx264", "-pix_fmt", "yuv420p"]
    run(["-f", "lavfi", "-i", source, *encoding, file_arg(path)], expected_duration_sec=0.0)
    return path


def timed(args: list[str], output: Path) -> float:
    started = time.perf_counter()
    run(args, expected_duration_sec=FRAMES / 8, output=output)
    return time.perf_counter() - started


def measure(folder: Path) -> list[tuple[int, str, float, float]]:
    clip = make_clip(folder / "clip.mp4")
    font = find_font()
    single = folder / "single.mp4"
    alone = ["-i", file_arg(clip), *output_args(OutputFormat.MP4, Quality.STANDARD)]
    baseline = statistics.median(timed([*alone, file_arg(single)], single) for _ in range(ROUNDS))
    rows = []
    for count in COUNTS:
        tiles = [SheetTile(clip, f"seed {10**19 + n}") for n in range(count)]
        planned = sheet_run(
            tiles,
            size=(SIZE, SIZE),
            fps=8,
            frames=FRAMES,
            video=folder / f"sheet_{count}.mp4",
            still=folder / f"sheet_{count}.png",
            font=font,
        )
        median = statistics.median(timed(list(planned.args), planned.video) for _ in range(ROUNDS))
        info = probe(planned.video)
        rows.append((count, f"{info.width}x{info.height}", median, median / baseline))
    return rows


def main() -> None:
    load = os.getloadavg()[0]
    with tempfile.TemporaryDirectory(prefix="vidgen-sheet-bench-") as scratch:
        rows = measure(Path(scratch))
    table = [
        "| variations | sheet | median of 5 | compared with encoding one clip |",
        "| --- | --- | --- | --- |",
        *(f"| {n} | {size} | {sec:.2f} s | {ratio:.1f}x |" for n, size, sec, ratio in rows),
    ]
    what = (
        f"One ffmpeg run per sheet (scale, drawtext, xstack, x264 standard and the PNG of the "
        f"middle frame) over {SIZE}x{SIZE}, {FRAMES}-frame clips; tiles keep their size up to a "
        "2048 px sheet. The comparison is one such clip encoded alone with the same preset. "
        f"Load average when it started: {load:.1f}."
    )
    body = "\n".join([what, "", *table])
    print(body)
    write_section("Contact sheet", body, "python bench/sheet_bench.py")


if __name__ == "__main__":
    main()
