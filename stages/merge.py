"""Joining clips in playback order, as the first part of an export's ffmpeg run.

- ``none`` with clips that agree on codec, size, rate and pixel format: the concat demuxer, whose
  packets can be stream-copied (no re-encode, no quality loss, well under a second).
- otherwise one filter graph: every clip is normalised to the project's size and rate (fit inside
  and pad, ``fps``, ``settb=AVTB``, ``format=yuv420p``, ``setsar=1``: xfade refuses inputs whose
  timebases differ, docs/testing.md#ffmpeg-facts-the-tests-rely-on), then joined with ``concat`` or
  a chain of ``xfade``.

A transition overlaps neighbours, so the joined length is the sum of the clips minus one
transition per join, and xfade ``k`` starts at ``sum of the first k lengths - k * duration``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from vidgen.ffmpeg import MediaInfo, file_arg, filter_number
from vidgen.specs import TransitionSpec, TransitionType

__all__ = [
    "ClipInput",
    "Source",
    "concat_list_text",
    "demuxer_compatible",
    "file_source",
    "join_source",
    "joined_duration",
    "merge_cost_sec",
    "merge_graph",
    "transition_name",
    "xfade_offsets",
]

_FPS_TOLERANCE = 1e-3
# Measured: decoding, normalising and xfading 512x512 clips costs ~0.01 s per megapixel.
_MERGE_SEC_PER_MPX = 0.01


@dataclass(frozen=True, slots=True)
class ClipInput:
    """One clip to join, as ffprobe (or, before generation, the manifest) describes it."""

    path: Path
    width: int
    height: int
    fps: float
    duration_sec: float
    frame_count: int
    codec: str = "h264"
    pix_fmt: str = "yuv420p"

    @classmethod
    def from_media(cls, info: MediaInfo) -> ClipInput:
        return cls(
            path=info.path,
            width=info.width,
            height=info.height,
            fps=info.fps,
            duration_sec=info.duration_sec,
            frame_count=info.frame_count,
            codec=info.codec,
            pix_fmt=info.pix_fmt,
        )


def transition_name(transition: TransitionSpec) -> str | None:
    """xfade's name for the transition (``wipeleft`` …), or None for a plain cut."""
    if transition.type is TransitionType.NONE:
        return None
    if transition.type is TransitionType.WIPE:
        return f"wipe{transition.direction}"
    return transition.type.value


def joined_duration(clips: Sequence[ClipInput], transition: TransitionSpec) -> float:
    """Length of the joined video: the clips' sum minus one transition per join."""
    overlap = 0.0 if transition_name(transition) is None else transition.duration_sec
    return sum(c.duration_sec for c in clips) - overlap * (len(clips) - 1)


def xfade_offsets(durations: Sequence[float], transition_sec: float) -> list[float]:
    """Where each xfade starts on the joined timeline: sum of previous lengths - k*duration."""
    offsets: list[float] = []
    elapsed = 0.0
    for k, duration in enumerate(durations[:-1], start=1):
        elapsed += duration
        offsets.append(elapsed - k * transition_sec)
    return offsets


def demuxer_compatible(clips: Sequence[ClipInput], width: int, height: int, fps: float) -> bool:
    """Whether the concat demuxer can join the clips as they are (same codec, size, rate)."""
    first = clips[0]
    return all(
        (c.codec, c.pix_fmt, c.width, c.height) == (first.codec, "yuv420p", width, height)
        and abs(c.fps - fps) < _FPS_TOLERANCE
        for c in clips
    )


def concat_list_text(paths: Sequence[Path]) -> str:
    """The concat demuxer's list file: one quoted ``file:`` URL per line, quotes escaped."""
    lines = []
    for path in paths:
        quoted = str(path.resolve()).replace("'", "'\\''")
        lines.append(f"file '{file_arg(quoted)}'\n")
    return "".join(lines)


def _normalise(clip: ClipInput, width: int, height: int, fps: float) -> str:
    filters = []
    if (clip.width, clip.height) != (width, height):
        # Fit inside the project frame and letterbox, so nothing is cropped or stretched.
        filters += [
            f"scale={width}:{height}:force_original_aspect_ratio=decrease"
            ":force_divisible_by=2:flags=lanczos",
            f"pad={width}:{height}:(ow-iw)/2:(oh-ih)/2",
        ]
    filters += [f"fps={filter_number(fps)}", "settb=AVTB", "format=yuv420p", "setsar=1"]
    return ",".join(filters)


def merge_graph(
    clips: Sequence[ClipInput],
    transition: TransitionSpec,
    size: tuple[int, int],
    fps: float,
    target: str,
) -> str:
    """The filter graph joining inputs ``0..n-1`` (the clips, in order) into ``[target]``."""
    width, height = size
    name = transition_name(transition)
    # xfade ends a transition early when its input ends together with its last frame, which is
    # how the fps filter delivers it: a frame went missing at each join (38 of 40 frames, only
    # hidden in MP4 by duplicates). One held frame past each clip's end fixes it; xfade drops it
    # with the rest of the outgoing clip, and the final trim drops the last clip's.
    hold = ",tpad=stop=1:stop_mode=clone" if name is not None and len(clips) > 1 else ""
    parts = [
        f"[{i}:v]{_normalise(c, width, height, fps)}{hold}[clip{i}]" for i, c in enumerate(clips)
    ]
    if len(clips) == 1:
        return parts[0].replace("[clip0]", f"[{target}]")
    if name is None:
        inputs = "".join(f"[clip{i}]" for i in range(len(clips)))
        return ";".join([*parts, f"{inputs}concat=n={len(clips)}:v=1:a=0[{target}]"])
    offsets = xfade_offsets([c.duration_sec for c in clips], transition.duration_sec)
    options = f"transition={name}:duration={filter_number(transition.duration_sec)}"
    for k, offset in enumerate(offsets, start=1):
        parts.append(f"[{_joined(k - 1)}][clip{k}]xfade={options}:offset={filter_number(offset)}")
        parts[-1] += f"[{_joined(k)}]"
    # Cut to the planned length: without it, the held frame (and, without the hold, a frame the
    # fps filter repeats: 5.125 s instead of 5.000 s for three 2 s clips) would run past it.
    length = filter_number(joined_duration(clips, transition))
    parts.append(f"[{_joined(len(offsets))}]trim=duration={length}[{target}]")
    return ";".join(parts)


def _joined(k: int) -> str:
    """Label of the first ``k+1`` clips joined (clip0 alone for k=0)."""
    return "clip0" if k == 0 else f"joined{k}"


def merge_cost_sec(clips: Sequence[ClipInput], size: tuple[int, int], *, copy: bool) -> float:
    """Estimated time to decode and join the clips (copying packets costs next to nothing)."""
    if copy:
        return 0.0
    width, height = size
    mpx_frames = sum(max(c.width * c.height, width * height) * c.frame_count for c in clips) / 1e6
    return _MERGE_SEC_PER_MPX * mpx_frames


@dataclass(frozen=True, slots=True)
class Source:
    """Where a fused ffmpeg run's video comes from: the clips being joined, or one file."""

    args: tuple[str, ...]  # input options
    inputs: tuple[Path, ...]
    graph: str = ""  # filters writing [label]; empty when the input is used as it is
    label: str = "0:v"
    copy_codec: str | None = None  # set when the packets may be copied unchanged
    stages: tuple[str, ...] = ()
    details: tuple[str, ...] = ()
    cost_sec: float = 0.0
    concat: tuple[Path, str] | None = None  # list file to write before the run, and its text


def file_source(path: Path, *, copy_codec: str | None = None, decode_sec: float = 0.0) -> Source:
    """One video file read as it is."""
    return Source(
        args=("-i", file_arg(path)), inputs=(path,), copy_codec=copy_codec, cost_sec=decode_sec
    )


def join_source(
    clips: Sequence[ClipInput],
    transition: TransitionSpec,
    size: tuple[int, int],
    fps: float,
    work_dir: Path,
) -> Source:
    """The clips joined in order: packets as they are where possible, else one filter graph."""
    paths = tuple(c.path for c in clips)
    name = transition_name(transition)
    count = f"{len(clips)} clip{'s' if len(clips) > 1 else ''}"
    if demuxer_compatible(clips, *size, fps) and (name is None or len(clips) == 1):
        if len(clips) == 1:
            return file_source(clips[0].path, copy_codec=clips[0].codec)
        listing = work_dir / "concat.txt"
        # -safe 0: the list holds absolute file: URLs, which safe mode refuses; we wrote it.
        return Source(
            args=("-f", "concat", "-safe", "0", "-i", file_arg(listing)),
            inputs=paths,
            copy_codec=clips[0].codec,
            stages=("merge",),
            details=(f"join {count} with cuts (concat demuxer, packets copied)",),
            cost_sec=0.02,  # copying packets of a few clips (measured)
            concat=(listing, concat_list_text(paths)),
        )
    how = f"{name} {filter_number(transition.duration_sec)} s (xfade)" if name else "cuts (concat)"
    changed = sum(
        1 for c in clips if (c.width, c.height) != size or abs(c.fps - fps) > _FPS_TOLERANCE
    )
    note = f", {changed} normalised to {size[0]}x{size[1]} @ {filter_number(fps)} fps"
    return Source(
        args=tuple(a for c in clips for a in ("-i", file_arg(c.path))),
        inputs=paths,
        graph=merge_graph(clips, transition, size, fps, "merged"),
        label="merged",
        stages=("merge",),
        details=(f"join {count} with {how}{note if changed else ''}",),
        cost_sec=merge_cost_sec(clips, size, copy=False),
    )
