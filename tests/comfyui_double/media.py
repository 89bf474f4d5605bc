"""Real files for the double's outputs, made with the system ffmpeg, and probes of uploaded media.

Outputs are synthetic (``testsrc2``) but honest: exactly the frame count, size and frame rate the
simulated graph produced, in the container the requested VHS format names, so a client's ffprobe
checks see what a real server would have written.
"""

from __future__ import annotations

import asyncio
import json
import math
from dataclasses import dataclass
from pathlib import Path

FFMPEG = "/usr/bin/ffmpeg"
FFPROBE = "/usr/bin/ffprobe"
QUIET = ["-hide_banner", "-loglevel", "error", "-nostdin", "-y"]

# VHS format -> (file extension, ffmpeg encoder arguments). Formats needing a GPU encoder are
# written with the CPU encoder of the same codec, so the file still matches its name.
VIDEO_FORMATS: dict[str, tuple[str, list[str]]] = {
    "video/h264-mp4": ("mp4", ["-c:v", "libx264", "-movflags", "+faststart"]),
    "video/nvenc_h264-mp4": ("mp4", ["-c:v", "libx264", "-movflags", "+faststart"]),
    "video/h265-mp4": (
        "mp4",
        ["-c:v", "libx265", "-tag:v", "hvc1", "-x265-params", "log-level=error"],
    ),
    "video/nvenc_hevc-mp4": (
        "mp4",
        ["-c:v", "libx265", "-tag:v", "hvc1", "-x265-params", "log-level=error"],
    ),
    "video/webm": (
        "webm",
        ["-c:v", "libvpx-vp9", "-deadline", "realtime", "-b:v", "0", "-crf", "40"],
    ),
    "video/av1-webm": (
        "webm",
        ["-c:v", "libvpx-vp9", "-deadline", "realtime", "-b:v", "0", "-crf", "40"],
    ),
    "video/nvenc_av1-mp4": ("mp4", ["-c:v", "libx264"]),
    "video/ProRes": ("mov", ["-c:v", "prores_ks"]),
    "video/ffv1-mkv": ("mkv", ["-c:v", "ffv1"]),
    "video/ffmpeg-gif": ("gif", ["-c:v", "gif"]),
    "image/gif": ("gif", ["-c:v", "gif"]),
    "image/webp": ("webp", ["-c:v", "libwebp_anim", "-loop", "0"]),
    "video/8bit-png": ("mov", ["-c:v", "png"]),
    "video/16bit-png": ("mov", ["-c:v", "png"]),
}
PIX_FMT_FORMATS = {"mp4", "webm"}
# Formats whose own widgets VHS hands to ffmpeg as they are: -crf (x264/x265) and -pix_fmt (FFV1,
# where bgra keeps 8-bit RGB losslessly; VHS's default there is 16-bit rgba64le).
CRF_FORMATS = {"video/h264-mp4", "video/h265-mp4"}
FFV1_FORMAT = "video/ffv1-mkv"
FFV1_DEFAULT_PIX_FMT = "rgba64le"


class MediaError(RuntimeError):
    """ffmpeg or ffprobe failed; carries the last stderr line."""


@dataclass(frozen=True)
class VideoProbe:
    width: int
    height: int
    fps: float
    frames: int

    @property
    def duration(self) -> float:
        return self.frames / self.fps if self.fps else 0.0


async def _run(argv: list[str]) -> bytes:
    process = await asyncio.create_subprocess_exec(
        *argv, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE
    )
    try:
        out, err = await process.communicate()
    except asyncio.CancelledError:
        # A restart or stop cancels the run: do not leave ffmpeg behind.
        process.kill()
        await process.wait()
        raise
    if process.returncode != 0:
        lines = err.decode(errors="replace").strip().splitlines() or ["(no output)"]
        raise MediaError(lines[-1])
    return out


def _source(width: int, height: int, fps: float) -> str:
    return f"testsrc2=size={width}x{height}:rate={fps:g}"


def extension_for(video_format: str) -> str:
    return VIDEO_FORMATS.get(video_format, VIDEO_FORMATS["video/h264-mp4"])[0]


async def write_video(
    path: Path,
    video_format: str,
    width: int,
    height: int,
    frames: int,
    fps: float,
    pix_fmt: str | None,
    first_frame: Path,
    crf: int | None = None,
) -> None:
    """Write exactly ``frames`` frames at ``fps`` plus the first frame as PNG, in one ffmpeg run."""
    ext, codec = VIDEO_FORMATS.get(video_format, VIDEO_FORMATS["video/h264-mp4"])
    pixels: list[str] = []
    if ext in PIX_FMT_FORMATS:
        # yuv420p needs even sizes; VHS pads to the format's alignment the same way.
        pixels = ["-vf", "pad=ceil(iw/2)*2:ceil(ih/2)*2", "-pix_fmt", pix_fmt or "yuv420p"]
    elif video_format == FFV1_FORMAT:
        pixels = ["-pix_fmt", pix_fmt or FFV1_DEFAULT_PIX_FMT]
    if crf is not None and video_format in CRF_FORMATS:
        codec = [*codec, "-crf", str(crf)]
    argv = [FFMPEG, *QUIET, "-f", "lavfi", "-i", _source(width, height, fps)]
    argv += ["-frames:v", str(frames), *pixels, *codec, "-r", f"{fps:g}", f"file:{path}"]
    argv += ["-frames:v", "1", f"file:{first_frame}"]
    await _run(argv)


async def write_pngs(paths: list[Path], width: int, height: int) -> None:
    """Write one PNG per path (an image batch saved by SaveImage/PreviewImage)."""
    for index, path in enumerate(paths):
        source = f"testsrc2=size={width}x{height}:rate=1"
        argv = [FFMPEG, *QUIET, "-f", "lavfi", "-i", source, "-ss", str(index), "-frames:v", "1"]
        await _run([*argv, f"file:{path}"])


async def probe_video(path: Path) -> VideoProbe:
    argv = [FFPROBE, "-v", "error", "-select_streams", "v:0", "-count_packets"]
    argv += ["-show_entries", "stream=width,height,r_frame_rate,nb_read_packets", "-of", "json"]
    data = json.loads(await _run([*argv, f"file:{path}"]))
    streams = data.get("streams") or []
    if not streams:
        raise MediaError(f"no video stream in {path.name}")
    stream = streams[0]
    num, _, den = str(stream.get("r_frame_rate", "0/1")).partition("/")
    fps = float(num) / float(den or 1) if float(den or 1) else 0.0
    frames = int(stream.get("nb_read_packets") or 1)
    return VideoProbe(int(stream["width"]), int(stream["height"]), fps, frames)


async def probe_image(path: Path) -> tuple[int, int]:
    probed = await probe_video(path)
    return probed.width, probed.height


def tiles(width: int, height: int, tile: int = 512, overlap: int = 32) -> int:
    """Tiles per frame of ComfyUI's tiled upscale (512 px tiles, 32 px overlap)."""
    step = tile - overlap
    return math.ceil(height / step) * math.ceil(width / step)
