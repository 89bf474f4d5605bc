"""The FFmpeg half of exporting, against the real ffmpeg: every output is checked with ffprobe."""

from __future__ import annotations

import os
import signal
import subprocess
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from stages.ffmpeg_runner import extract_thumbnail, ffmpeg_version, file_arg, probe, run
from tests.fixtures.media import MakeClip
from vidgen.errors import FFmpegError, JobCancelled, StorageError

# A source that never ends on its own, so a test can stop ffmpeg midway through.
ENDLESS = ["-f", "lavfi", "-re", "-i", "testsrc2=size=256x256:rate=25"]


def _children() -> list[int]:
    """Process ids of this process's live children (ffmpeg runs as one)."""
    found: list[int] = []
    for task in Path(f"/proc/{os.getpid()}/task").iterdir():
        found += [int(pid) for pid in (task / "children").read_text().split()]
    return found


# --- the runner --------------------------------------------------------------------------------


def test_probe_reads_a_clip(make_clip: MakeClip) -> None:
    info = probe(make_clip(512, 384, 8, 2))
    assert (info.width, info.height, info.fps, info.fps_fraction) == (512, 384, 8.0, "8/1")
    assert (info.frame_count, info.duration_sec) == (16, 2.0)
    assert (info.codec, info.pix_fmt, info.has_audio) == ("h264", "yuv420p", False)


def test_probe_rejects_a_non_video_in_words(tmp_path: Path) -> None:
    text = tmp_path / "notes.mp4"
    text.write_text("this is not a video\n")
    with pytest.raises(FFmpegError, match=r"notes.mp4 is not a video ffmpeg can read: .*Invalid"):
        probe(text)
    with pytest.raises(FFmpegError, match="No such file"):
        probe(tmp_path / "missing.mp4")


def test_probe_rejects_a_still_image(tmp_path: Path, make_clip: MakeClip) -> None:
    jpg = tmp_path / "thumb.jpg"
    extract_thumbnail(make_clip(), jpg, width=160)
    with pytest.raises(FFmpegError, match="still image"):
        probe(jpg)


def test_thumbnail_has_the_asked_width(tmp_path: Path, make_clip: MakeClip) -> None:
    jpg = tmp_path / "-odd:name.jpg"  # would be an option or a protocol without file:
    extract_thumbnail(make_clip(640, 360, 8, 1), jpg)
    out = subprocess.run(
        [
            "ffprobe",
            "-v",
            "error",
            "-show_entries",
            "stream=width,height",
            "-of",
            "csv=p=0",
            file_arg(jpg),
        ],
        capture_output=True,
        text=True,
        check=True,
    )
    assert out.stdout.strip() == "320,180"


def test_version_names_the_release() -> None:
    assert ffmpeg_version()[0].isdigit()


def test_run_reports_progress_up_to_one(tmp_path: Path, make_clip: MakeClip) -> None:
    seen: list[float] = []
    out = tmp_path / "out.mp4"
    run(
        ["-i", file_arg(make_clip()), "-c:v", "libx264", file_arg(out)],
        expected_duration_sec=2.0,
        on_progress=seen.append,
    )
    assert seen[-1] == 1.0
    assert seen == sorted(seen)
    assert probe(out).frame_count == 16


def test_failure_says_why_in_a_few_lines(tmp_path: Path, make_clip: MakeClip) -> None:
    out = tmp_path / "out.mp4"
    graph = "[0:v]fps=12[a];[a][1:v]xfade=duration=0.5:offset=1"  # timebases differ
    clip = file_arg(make_clip())
    with pytest.raises(FFmpegError) as caught:
        run(
            ["-i", clip, "-i", clip, "-filter_complex", graph, file_arg(out)],
            expected_duration_sec=2.0,
            output=out,
        )
    message = caught.value.user_message
    assert "timebase" in message
    assert "exit code 1" in message
    assert "Conversion failed" not in message
    assert "0x" not in message
    assert not out.exists()


def test_killed_ffmpeg_is_an_error_in_words(tmp_path: Path) -> None:
    out = tmp_path / "out.mp4"

    def kill_ffmpeg(_fraction: float) -> None:
        for pid in _children():
            os.kill(pid, signal.SIGKILL)

    with pytest.raises(FFmpegError, match=r"ffmpeg was killed by SIGKILL writing out\.mp4"):
        run(
            [*ENDLESS, "-c:v", "libx264", file_arg(out)],
            expected_duration_sec=60.0,
            on_progress=kill_ffmpeg,
            output=out,
        )
    assert not out.exists()


def test_cancel_stops_ffmpeg_and_removes_the_output(tmp_path: Path) -> None:
    out = tmp_path / "out.mp4"
    cancel = threading.Event()
    with pytest.raises(JobCancelled):
        run(
            [*ENDLESS, "-c:v", "libx264", file_arg(out)],
            expected_duration_sec=60.0,
            on_progress=lambda _fraction: cancel.set(),
            cancel=cancel,
            output=out,
        )
    assert _children() == []
    assert not out.exists()


@pytest.fixture
def tiny_disk(tmp_path: Path) -> Iterator[Path]:
    """A 1 MiB tmpfs, so a write runs out of space for real."""
    disk = tmp_path / "disk"
    disk.mkdir()
    mounted = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", str(disk)],
        capture_output=True,
        text=True,
        check=False,
    )
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here to fill a disk: {mounted.stderr.strip()}")
    yield disk
    subprocess.run(["umount", str(disk)], check=True)


def test_full_disk_is_a_storage_error(tiny_disk: Path, make_clip: MakeClip) -> None:
    out = tiny_disk / "out.mkv"
    with pytest.raises(StorageError, match=r"the disk holding .*disk is full"):
        run(  # raw frames: 6 MB for this clip, however well it compresses
            ["-i", file_arg(make_clip()), "-c:v", "rawvideo", file_arg(out)],
            expected_duration_sec=2.0,
            output=out,
        )
    assert list(tiny_disk.iterdir()) == []
