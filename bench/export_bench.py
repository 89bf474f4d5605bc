"""Export speed: the fused ffmpeg run against the best hand-written command and a naive chain.

The export is 3 clips of 2 s at 512x512 / 8 fps, a 0.5 s fade, 2x lanczos, mp4 high. Three ways
of making it run interleaved (so a busy moment slows all of them alike), 5 times each; the table
gives medians. Lanczos and minterpolate throughput are measured as filters alone (``-f null``,
decoding included).
The table goes into docs/benchmarks.md under "Export".

    python bench/export_bench.py        (from the repository's folder)
"""

from __future__ import annotations

import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

# Run as a script, Python puts bench/ (not the repository) on sys.path; bench.report lives there.
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.report import write_section
from stages import ExportPlan, FFmpegStep, build_export_plan, encode, execute_ffmpeg_step
from stages.merge import ClipInput
from vidgen.ffmpeg import file_arg, probe, run
from vidgen.specs import (
    ExportSpec,
    Quality,
    TransitionSpec,
    TransitionType,
    UpscaleSpec,
)

ROUNDS = 5
SPEC = ExportSpec(
    transition=TransitionSpec(TransitionType.FADE, 0.5),
    upscale=UpscaleSpec(2),
    quality=Quality.HIGH,
)
XFADE = "xfade=transition=fade:duration=0.5"
HIGH = ["-c:v", "libx264", "-preset", "slow", "-crf", "18", "-pix_fmt", "yuv420p"]


def make_clip(path: Path, fps: int, duration_sec: float) -> Path:
    source = f"testsrc2=size=512x512:rate={fps}:duration={duration_sec}"
    encoding = ["-c:v", "libx264", "-pix_fmt", "yuv420p"]
    run(["-f", "lavfi", "-i", source, *encoding, file_arg(path)], expected_duration_sec=0.0)
    return path


def fused_plan(clips: list[Path], folder: Path) -> ExportPlan:
    """The export plan vidgen runs for these clips: one fused ffmpeg step."""
    inputs = [ClipInput.from_media(probe(c)) for c in clips]
    output = folder / "fused.mp4"
    return build_export_plan(
        SPEC, inputs, size=(512, 512), fps=8, output=output, work_dir=folder, chunk_frames=16
    )


def fused(clips: list[Path], folder: Path) -> Callable[[], None]:
    plan = fused_plan(clips, folder)
    (step,) = plan.steps
    assert isinstance(step, FFmpegStep)
    return lambda: execute_ffmpeg_step(step)


def hand_written(clips: list[Path], folder: Path) -> Callable[[], None]:
    """The shortest command a person who knows ffmpeg would write for the same output."""
    graph = (
        f"[0:v][1:v]{XFADE}:offset=1.5[a];[a][2:v]{XFADE}:offset=3,scale=1024:1024:flags=lanczos[v]"
    )
    inputs = [a for c in clips for a in ("-i", str(c))]
    argv = ["ffmpeg", "-v", "error", "-nostdin", "-y", *inputs, "-filter_complex", graph]
    argv += ["-map", "[v]", *HIGH, "-movflags", "+faststart", "-an", str(folder / "hand.mp4")]

    def command() -> None:
        subprocess.run(argv, check=True)

    return command


def naive_chain(clips: list[Path], folder: Path, between: list[str]) -> Callable[[], None]:
    """One ffmpeg run per stage (join, upscale, encode), each writing a file with ``between``."""
    inputs = [a for c in clips for a in ("-i", file_arg(c))]
    joined, out, final = folder / "joined.mp4", folder / "upscaled.mp4", folder / "naive.mp4"
    graph = f"[0:v][1:v]{XFADE}:offset=1.5[a];[a][2:v]{XFADE}:offset=3[v]"
    runs = [
        [*inputs, "-filter_complex", graph, "-map", "[v]", *between, file_arg(joined)],
        ["-i", file_arg(joined), "-vf", "scale=1024:1024:flags=lanczos", *between, file_arg(out)],
        ["-i", file_arg(out), *HIGH, "-movflags", "+faststart", "-an", file_arg(final)],
    ]

    def chain() -> None:
        for args in runs:
            run(args, expected_duration_sec=5.0)

    return chain


def timed(action: Callable[[], None]) -> float:
    started = time.perf_counter()
    action()
    return time.perf_counter() - started


def filter_fps(clip: Path, filters: str, frames_out: int) -> float:
    """Output frames per second of ``filters`` alone over ``clip`` (median of the rounds)."""
    args = ["-i", file_arg(clip), "-vf", filters, "-f", "null", "-"]
    seconds = statistics.median(
        timed(lambda: run(args, expected_duration_sec=0.0)) for _ in range(ROUNDS)
    )
    return frames_out / seconds


def measure(folder: Path) -> tuple[dict[str, float], dict[str, float], ExportPlan]:
    clips = [make_clip(folder / f"clip_{i}.mp4", 8, 2) for i in range(3)]
    contenders = {
        "fused (vidgen plan, one run)": fused(clips, folder),
        "hand-written single command": hand_written(clips, folder),
        "naive chain, near-lossless fast intermediates (x264 veryfast crf 12)": naive_chain(
            clips, folder, list(encode.INTERMEDIATE_ARGS)
        ),
        "naive chain, every stage encoded like the export (x264 slow crf 18)": naive_chain(
            clips, folder, HIGH
        ),
    }
    times: dict[str, list[float]] = {name: [] for name in contenders}
    for _ in range(ROUNDS):
        for name, action in contenders.items():
            times[name].append(timed(action))
    plan = fused_plan(clips, folder)
    return {name: statistics.median(t) for name, t in times.items()}, throughput(folder), plan


def throughput(folder: Path) -> dict[str, float]:
    """Output frames per second of each filter alone, including decoding its 512² input."""
    long_clip = make_clip(folder / "long.mp4", 24, 5)  # 120 frames
    slow_clip = make_clip(folder / "slow.mp4", 8, 5)  # 40 frames, 120 once interpolated to 24
    mci = "tpad=stop_mode=clone:stop=2,minterpolate=fps={fps}:mi_mode=mci,trim=duration=5"
    return {
        "decoding alone (512², 120 frames)": filter_fps(long_clip, "null", 120),
        "lanczos 2x, 512² → 1024²": filter_fps(long_clip, "scale=1024:1024:flags=lanczos", 120),
        "lanczos 4x, 512² → 2048²": filter_fps(long_clip, "scale=2048:2048:flags=lanczos", 120),
        "minterpolate mci 8 → 24 fps, 512²": filter_fps(slow_clip, mci.format(fps=24), 120),
        "minterpolate mci 8 → 30 fps, 512²": filter_fps(slow_clip, mci.format(fps=30), 150),
    }


def table(medians: dict[str, float], throughput: dict[str, float], plan: ExportPlan) -> str:
    names = list(medians)
    fused_sec, hand_sec = medians[names[0]], medians[names[1]]
    rows = [
        "| way of making the export | median of 5 | compared with fused | goal |",
        "| --- | --- | --- | --- |",
        f"| {names[0]} | {fused_sec:.2f} s | | |",
        f"| {names[1]} | {hand_sec:.2f} s | fused takes {fused_sec / hand_sec:.2f}x its time "
        "| ≤ 1.10x |",
    ]
    for name in names[2:]:
        speedup = medians[name] / fused_sec
        rows.append(f"| {name} | {medians[name]:.2f} s | fused is {speedup:.2f}x faster | ≥ 1.5x |")
    estimate = f"The plan estimated {plan.estimated_sec:.2f} s for the fused run."
    speeds = ["| filter alone (`-f null`) | output frames per second |", "| --- | --- |"]
    speeds += [f"| {name} | {fps:.1f} |" for name, fps in throughput.items()]
    what = (
        "Export: 3 clips of 2 s at 512x512, 8 fps, fade 0.5 s, 2x lanczos, mp4 high "
        "(x264 slow, crf 18) → 1024x1024, 5.000 s. The contenders run interleaved, 5 rounds; "
        "each naive chain is join, upscale, encode as 3 runs with 2 files between."
    )
    return "\n".join([what, "", *rows, "", estimate, "", *speeds])


def main() -> None:
    with tempfile.TemporaryDirectory(prefix="vidgen-export-bench-") as scratch:
        medians, throughput, plan = measure(Path(scratch))
    body = table(medians, throughput, plan)
    print(body)
    write_section("Export", body, "python bench/export_bench.py")


if __name__ == "__main__":
    main()
