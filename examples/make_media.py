"""Make the tiny input videos the examples use (examples/media/), with the system's ffmpeg.

Run it once: `python examples/make_media.py`. Nothing here is committed media: the videos are
drawn by ffmpeg's test sources in a second or two.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

MEDIA = Path(__file__).resolve().parent / "media"

# name -> (video source, seconds, with a sound track)
VIDEOS = {
    "beach.mp4": ("testsrc2=size=512x512:rate=8", 2.0, False),
    "forest.mp4": ("smptehdbars=size=512x512:rate=8", 2.0, False),
    "city.mp4": ("rgbtestsrc=size=640x360:rate=12", 2.5, False),
    # An imported phone clip: another size and rate, and a sound track vidgen drops.
    "intro.mp4": ("testsrc=size=480x270:rate=25", 2.0, True),
}


def make(name: str, source: str, seconds: float, with_audio: bool) -> None:
    target = MEDIA / name
    if target.exists():
        return
    args = ["ffmpeg", "-hide_banner", "-loglevel", "error", "-nostdin", "-y"]
    args += ["-f", "lavfi", "-i", f"{source}:duration={seconds}"]
    if with_audio:
        args += ["-f", "lavfi", "-i", f"sine=frequency=440:duration={seconds}", "-c:a", "aac"]
    args += ["-c:v", "libx264", "-pix_fmt", "yuv420p", "-preset", "veryfast", f"file:{target}"]
    subprocess.run(args, check=True)


def make_image(name: str, source: str) -> None:
    target = MEDIA / name
    if not target.exists():
        args = ["ffmpeg", "-hide_banner", "-loglevel", "error", "-nostdin", "-y"]
        subprocess.run(
            [*args, "-f", "lavfi", "-i", source, "-frames:v", "1", f"file:{target}"], check=True
        )


def main() -> int:
    MEDIA.mkdir(exist_ok=True)
    for name, (source, seconds, with_audio) in VIDEOS.items():
        make(name, source, seconds, with_audio)
    make_image("portrait.png", "testsrc2=size=512x640")
    print(f"made {len(VIDEOS)} videos and 1 image in {MEDIA}")  # noqa: T201 (a script's one line)
    return 0


if __name__ == "__main__":
    sys.exit(main())
