"""Encoding: the ffmpeg output options for each format and quality, and the GIF palette graph.

The presets and their reasoning are in docs/export.md; the cost and size figures were measured
on the 2-core reference machine (bench/export_bench.py) and only weight progress and estimates.
Every output is silent (``-an``): an imported clip's audio is dropped (docs/architecture.md).
"""

from __future__ import annotations

from dataclasses import dataclass

from vidgen.specs import GIF_MAX_FPS, GIF_MAX_WIDTH, OutputFormat, Quality

__all__ = [
    "INTERMEDIATE_ARGS",
    "EncodePreset",
    "copy_args",
    "encode_cost_sec",
    "encoded_bytes",
    "gif_fps",
    "gif_graph",
    "gif_size",
    "output_args",
    "preset",
    "stream_copy_allowed",
]


@dataclass(frozen=True, slots=True)
class EncodePreset:
    """One quality level of one format, with what it costs and weighs (docs/export.md)."""

    speed: str  # x264/x265 preset name, VP9 -cpu-used, GIF dither
    crf: int  # GIF: palette colours
    sec_per_mpx: float  # encoding time per megapixel of frames
    bytes_per_frame: float  # size of one 1024x1024 frame at 8 fps


# Measured on the 2-core reference machine with testsrc2 joins at 512x512 and 1024x1024.
_PRESETS: dict[OutputFormat, dict[Quality, EncodePreset]] = {
    OutputFormat.MP4: {
        Quality.DRAFT: EncodePreset("veryfast", 26, 0.018, 12500),
        Quality.STANDARD: EncodePreset("medium", 21, 0.032, 18000),
        Quality.HIGH: EncodePreset("slow", 18, 0.052, 23000),
    },
    OutputFormat.MP4_H265: {
        Quality.DRAFT: EncodePreset("veryfast", 30, 0.035, 10000),
        Quality.STANDARD: EncodePreset("medium", 26, 0.052, 14500),
        Quality.HIGH: EncodePreset("slow", 22, 0.098, 17500),
    },
    OutputFormat.WEBM: {
        Quality.DRAFT: EncodePreset("8", 40, 0.013, 9000),
        Quality.STANDARD: EncodePreset("4", 33, 0.050, 10500),
        Quality.HIGH: EncodePreset("2", 30, 0.070, 12000),
    },
    OutputFormat.GIF: {
        Quality.DRAFT: EncodePreset("bayer:bayer_scale=3", 128, 0.060, 45000),
        Quality.STANDARD: EncodePreset("sierra2_4a", 256, 0.080, 58000),
        Quality.HIGH: EncodePreset("floyd_steinberg", 256, 0.090, 57000),
    },
}

# Files handed from one step to the next (a ComfyUI stage between): near-lossless so a second
# encode costs no visible quality, and fast because nobody watches them.
INTERMEDIATE_ARGS = ("-c:v", "libx264", "-preset", "veryfast", "-crf", "12", "-pix_fmt", "yuv420p")
INTERMEDIATE_PRESET = EncodePreset("veryfast", 12, 0.020, 50000)

# Codecs a format can carry unchanged, so a join of matching clips needs no re-encode.
_COPYABLE = {OutputFormat.MP4: ("h264",), OutputFormat.MP4_H265: ("hevc",)}


def preset(fmt: OutputFormat | None, quality: Quality) -> EncodePreset:
    """The preset of ``fmt`` at ``quality``; ``None`` means an intermediate file."""
    return INTERMEDIATE_PRESET if fmt is None else _PRESETS[fmt][quality]


def output_args(fmt: OutputFormat | None, quality: Quality) -> list[str]:
    """Codec options for the output file (GIF's palette work is in :func:`gif_graph`)."""
    if fmt is None:
        return [*INTERMEDIATE_ARGS, "-an"]
    chosen = _PRESETS[fmt][quality]
    crf = str(chosen.crf)
    if fmt is OutputFormat.MP4:
        codec = ["-c:v", "libx264", "-preset", chosen.speed, "-crf", crf]
        return [*codec, "-pix_fmt", "yuv420p", "-movflags", "+faststart", "-an"]
    if fmt is OutputFormat.MP4_H265:
        # hvc1 (not the default hev1) is the tag Apple players require to play H.265 in MP4;
        # x265 prints its own banner on stderr unless told otherwise.
        codec = ["-c:v", "libx265", "-preset", chosen.speed, "-crf", crf, "-tag:v", "hvc1"]
        quiet = ["-x265-params", "log-level=error"]
        return [*codec, *quiet, "-pix_fmt", "yuv420p", "-movflags", "+faststart", "-an"]
    if fmt is OutputFormat.WEBM:
        # -b:v 0 makes -crf a constant-quality target (otherwise it is capped by a bitrate);
        # row-mt lets VP9 use both cores on frames this small.
        codec = ["-c:v", "libvpx-vp9", "-b:v", "0", "-crf", crf, "-row-mt", "1"]
        return [
            *codec,
            "-deadline",
            "good",
            "-cpu-used",
            chosen.speed,
            "-pix_fmt",
            "yuv420p",
            "-an",
        ]
    return ["-c:v", "gif", "-an"]


def stream_copy_allowed(fmt: OutputFormat | None, codec: str) -> bool:
    """Whether clips in ``codec`` can go into ``fmt`` without re-encoding."""
    if fmt is None:
        return codec == "h264"
    return codec in _COPYABLE.get(fmt, ())


def copy_args(codec: str) -> list[str]:
    """Options for a stream-copied MP4: tagged for Apple players when H.265, moov up front."""
    tag = ["-tag:v", "hvc1"] if codec == "hevc" else []
    return ["-c:v", "copy", *tag, "-movflags", "+faststart", "-an"]


def gif_size(width: int, height: int) -> tuple[int, int]:
    """At most 512 px wide, aspect kept, both sides even."""
    out_width = min(width, GIF_MAX_WIDTH) // 2 * 2
    out_height = max(2, round(height * out_width / width / 2) * 2)
    return out_width, out_height


def gif_fps(fps: float) -> float:
    """The rate a GIF of ``fps`` frames a second is written at: the same, up to 25."""
    return min(fps, GIF_MAX_FPS)


def gif_graph(source: str, target: str, size: tuple[int, int], fps: float, quality: Quality) -> str:
    """Filters from ``[source]`` to ``[target]``: at most 25 fps, resized, one palette for the
    whole clip.

    A palette made from the clip itself (palettegen, then paletteuse) keeps colours that GIF's
    default 256-colour web palette would band badly.
    """
    chosen = _PRESETS[OutputFormat.GIF][quality]
    return (
        f"[{source}]fps={gif_fps(fps):g},scale={size[0]}:{size[1]}:flags=lanczos,"
        "split[gif_a][gif_b];"
        f"[gif_a]palettegen=max_colors={chosen.crf}:stats_mode=full[gif_palette];"
        f"[gif_b][gif_palette]paletteuse=dither={chosen.speed}[{target}]"
    )


def encode_cost_sec(fmt: OutputFormat | None, quality: Quality, mpx_frames: float) -> float:
    """Estimated encoding time for ``mpx_frames`` megapixels of frames."""
    return preset(fmt, quality).sec_per_mpx * mpx_frames


def encoded_bytes(
    fmt: OutputFormat | None, quality: Quality, *, pixels: int, frames: int, fps: float
) -> int:
    """Estimated output size of ``frames`` frames of ``pixels`` each at ``fps``.

    Measured sizes grow slower than the pixel count (an upscaled frame holds no new detail:
    x264 spends 2.5x less per pixel at 2048² than at 512²) and than the frame rate (interpolated
    frames are mostly predicted), hence the exponents.
    """
    per_frame = preset(fmt, quality).bytes_per_frame * float((pixels / 1024**2) ** 0.67)
    return round(per_frame * frames * float((8.0 / fps) ** 0.5))
