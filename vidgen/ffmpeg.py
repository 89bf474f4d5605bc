"""The only place that runs ffmpeg and ffprobe.

Every other module builds an argv (or an ffmpeg-python graph) and hands it to :func:`run`, which
adds the options we always want, reports progress from ``-progress pipe:1``, honours cancellation
and turns every failure into a :class:`~vidgen.errors.FFmpegError` (or ``StorageError`` for a full
disk, ``JobCancelled`` for a cancel) whose message is a few meaningful stderr lines, never a dump.

A file vidgen did not make (a user's video) is read with ``untrusted=True``: ffmpeg may then open
that file alone (``-protocol_whitelist file``) and only as one of the plain containers of
``VIDEO_FORMATS``. Without it a playlist (HLS), a concat list or an image-sequence pattern saved
under a video's name would make ffmpeg read whatever files that text names
(docs/intake-notes.md, "What ffmpeg may read").
"""

from __future__ import annotations

import ctypes
import functools
import json
import logging
import os
import queue
import re
import signal
import subprocess
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import IO, Any, Protocol

import ffmpeg

from vidgen.errors import FFmpegError, JobCancelled, StorageError

__all__ = [
    "VIDEO_FORMATS",
    "FFmpegGraph",
    "MediaInfo",
    "extract_thumbnail",
    "ffmpeg_encoders",
    "ffmpeg_version",
    "file_arg",
    "filter_number",
    "format_tags",
    "probe",
    "run",
    "summarize_stderr",
]

log = logging.getLogger(__name__)

FFMPEG = "ffmpeg"
FFPROBE = "ffprobe"
# Options every run gets: no banner, never read stdin (a worker has none), overwrite the temporary
# output we were given, machine-readable progress on stdout and no human stats line on stderr, so
# stderr holds only warnings and errors, which is what a failure message is made of.
GLOBAL_OPTIONS = ("-hide_banner", "-nostdin", "-y", "-loglevel", "warning")
PROGRESS_OPTIONS = ("-progress", "pipe:1", "-nostats")
TERMINATE_GRACE_SEC = 5.0
_PR_SET_PDEATHSIG = 1  # <linux/prctl.h>
_LIBC = ctypes.CDLL(None, use_errno=True)  # loaded before any fork: the child only calls it
POLL_INTERVAL_SEC = 0.1
MESSAGE_LINES = 3
# Lines ffmpeg prints after the real cause, saying only that something failed earlier.
_BOILERPLATE = (
    "Conversion failed!",
    "Error reinitializing filters!",
    "Error initializing complex filters",
    "Error while filtering",
    "Error while processing the decoded data",
    "Failed to configure output pad",
    "Failed to inject frame into filter network",
    "Exiting normally",
    "Last message repeated",
)
_ADDRESS = re.compile(r"^\[(\S+) @ 0x[0-9a-f]+\]\s*")
_DISK_FULL = "No space left on device"
_IMAGE_FORMATS = ("image2", "png_pipe", "jpeg_pipe", "webp_pipe", "bmp_pipe", "tiff_pipe")
# The demuxers an untrusted input may be read with: containers that hold their streams
# themselves and name no other file (mov's external data references stay off by default).
VIDEO_FORMATS = ("mov", "mp4", "m4a", "3gp", "3g2", "mj2", "matroska", "webm", "avi", "gif")
_UNTRUSTED_INPUT = ("-protocol_whitelist", "file", "-format_whitelist", ",".join(VIDEO_FORMATS))
_NOT_ON_WHITELIST = re.compile(r"\[(\w+) @ 0x[0-9a-f]+\] Format not on whitelist")
# What a refused demuxer's name means to a person.
_FORMAT_WORDS = {
    "hls": "an HLS playlist",
    "concat": "an ffconcat list",
    "dash": "a DASH manifest",
    "image2": "an image sequence",
    "tty": "a text file",
    "srt": "a subtitle file",
    "ass": "a subtitle file",
    "webvtt": "a subtitle file",
    **{name: "a still image" for name in _IMAGE_FORMATS if name != "image2"},
}


class FFmpegGraph(Protocol):
    """What :func:`run` needs of an ffmpeg-python output node: its argv without ``ffmpeg``."""

    def get_args(self) -> list[str]: ...


@dataclass(frozen=True, slots=True)
class MediaInfo:
    """What ffprobe says about the first video stream of a file."""

    path: Path
    width: int
    height: int
    fps: float
    fps_fraction: str  # exact, e.g. "8/1" or "30000/1001": use this in filters
    frame_count: int
    duration_sec: float
    codec: str
    pix_fmt: str
    has_audio: bool
    format_name: str = ""  # the demuxer ffprobe used, e.g. "mov,mp4,m4a,3gp,3g2,mj2"


def file_arg(path: Path | str) -> str:
    """The argument ffmpeg reads as exactly this file.

    ffmpeg parses ``name:rest`` as a protocol (``http:``, ``concat:``, a Windows drive letter…)
    and a leading ``-`` as an option, so a user's file name could fool it; the ``file:`` protocol
    prefix makes every name a plain local path.
    """
    return f"file:{path}"


def filter_number(value: float) -> str:
    """A number as a filter option: ``1.5``, ``24``, never ``1.5000000001`` or ``2.0``."""
    return f"{value:.6f}".rstrip("0").rstrip(".")


def probe(path: Path, *, untrusted: bool = False) -> MediaInfo:
    """Describe the video in ``path``; ``untrusted``: a file vidgen did not make, read only as
    one of the plain containers of ``VIDEO_FORMATS``.

    Raises:
        FFmpegError: the file is missing, unreadable, not a video, or a still image (or, when
            untrusted, in another format: a playlist, a concat list…).
    """
    data = _ffprobe_json(path, count_packets=False, untrusted=untrusted)
    video = _video_stream(path, data)
    frames = _int(video.get("nb_frames"))
    if frames <= 0:
        # webm, gif and some mkv files carry no frame count; counting packets demuxes the file
        # without decoding it, which stays fast even for long videos.
        counted = _ffprobe_json(path, count_packets=True, untrusted=untrusted)
        frames = _int(_video_stream(path, counted).get("nb_read_packets"))
    fps_fraction = _frame_rate(video)
    fmt = data.get("format", {})
    duration = float(video.get("duration") or fmt.get("duration") or 0.0)
    if duration <= 0.0 and frames > 0:
        duration = frames / float(Fraction(fps_fraction))
    return MediaInfo(
        path=path,
        width=int(video["width"]),
        height=int(video["height"]),
        fps=float(Fraction(fps_fraction)),
        fps_fraction=fps_fraction,
        frame_count=frames,
        duration_sec=duration,
        codec=str(video.get("codec_name", "")),
        pix_fmt=str(video.get("pix_fmt", "")),
        has_audio=any(s.get("codec_type") == "audio" for s in data.get("streams", [])),
        format_name=str(fmt.get("format_name", "")),
    )


def format_tags(path: Path) -> dict[str, str]:
    """The container's own metadata (MP4 tags, Matroska tags, a GIF's comment), keys lowercased.

    Raises:
        FFmpegError: as :func:`probe`.
    """
    tags = (
        _ffprobe_json(path, count_packets=False, untrusted=False).get("format", {}).get("tags", {})
    )
    return {str(k).lower(): str(v) for k, v in tags.items()}


def _ffprobe_json(path: Path, *, count_packets: bool, untrusted: bool) -> dict[str, Any]:
    argv = [FFPROBE, "-v", "error", "-of", "json", "-show_format", "-show_streams"]
    if count_packets:
        argv += ["-count_packets", "-select_streams", "v:0"]
    if untrusted:
        argv += _UNTRUSTED_INPUT
    argv.append(file_arg(path))
    log.debug("ffprobe argv: %s", argv)
    try:
        done = subprocess.run(
            argv,
            capture_output=True,
            text=True,
            check=False,
            timeout=120,
            preexec_fn=_dying_with_us(),
        )
    except FileNotFoundError as exc:
        raise FFmpegError("ffprobe is not installed (install the ffmpeg package)") from exc
    except subprocess.TimeoutExpired as exc:
        raise FFmpegError(f"ffprobe took more than 2 minutes to read {path.name}") from exc
    if done.returncode != 0:
        log.debug("ffprobe stderr for %s:\n%s", path, done.stderr)
        raise _probe_failure(path, done.returncode, done.stderr)
    result: dict[str, Any] = json.loads(done.stdout)
    return result


def _probe_failure(path: Path, returncode: int, stderr: str) -> FFmpegError:
    """What ffprobe's failure means, naming the file by its name alone (never its folder)."""
    refused = _NOT_ON_WHITELIST.search(stderr)
    if refused is not None:
        name = refused.group(1)
        what = _FORMAT_WORDS.get(name, f"in the {name} format")
        kinds = "MP4, MOV, MKV, WebM, AVI or GIF"
        return FFmpegError(f"{path.name} is {what}, not a video file ({kinds} are read)")
    reason = summarize_stderr(_names_only(stderr, [path]))
    reason = reason or f"ffprobe exited with code {returncode}"
    return FFmpegError(f"{path.name} is not a video ffmpeg can read: {reason}")


def _video_stream(path: Path, data: dict[str, Any]) -> dict[str, Any]:
    fmt = str(data.get("format", {}).get("format_name", ""))
    if fmt in _IMAGE_FORMATS:
        raise FFmpegError(f"{path.name} is a still image ({fmt}), not a video")
    for stream in data.get("streams", []):
        if stream.get("codec_type") == "video" and not stream.get("disposition", {}).get(
            "attached_pic"
        ):
            result: dict[str, Any] = stream
            return result
    raise FFmpegError(f"{path.name} has no video stream (format {fmt or 'unknown'})")


def _frame_rate(stream: dict[str, Any]) -> str:
    """The average frame rate, falling back to the nominal one; always a valid fraction."""
    for key in ("avg_frame_rate", "r_frame_rate"):
        value = str(stream.get(key, "0/0"))
        num, _, den = value.partition("/")
        if _int(num) > 0 and _int(den or "1") > 0:
            rate = Fraction(_int(num), _int(den or "1"))
            return f"{rate.numerator}/{rate.denominator}"
    raise FFmpegError("the video has no usable frame rate")


def _int(value: object) -> int:
    try:
        return int(str(value))
    except ValueError:
        return 0


def ffmpeg_version() -> str:
    """The installed ffmpeg's version, e.g. ``5.1.9-0+deb12u1`` (for /health and bug reports)."""
    first = next(iter(_ask_ffmpeg("-version").splitlines()), "")
    match = re.match(r"ffmpeg version (\S+)", first)
    if not match:
        raise FFmpegError(f"ffmpeg -version did not answer as expected: {first}")
    return match.group(1)


def ffmpeg_encoders() -> frozenset[str]:
    """The names of the encoders this ffmpeg has (``libx264``, ``gif``, …)."""
    # Lines like " V....D libx264   libx264 H.264 / …", after a legend ending in "------".
    listing = _ask_ffmpeg("-encoders").split(" ------", 1)[-1]
    return frozenset(line.split()[1] for line in listing.splitlines() if len(line.split()) > 1)


def _ask_ffmpeg(option: str) -> str:
    try:
        done = subprocess.run(
            [FFMPEG, "-hide_banner", option],
            capture_output=True,
            text=True,
            check=False,
            preexec_fn=_dying_with_us(),
        )
    except FileNotFoundError as exc:
        raise FFmpegError("ffmpeg is not installed (install the ffmpeg package)") from exc
    if done.returncode != 0:
        raise FFmpegError(f"ffmpeg {option} failed: {summarize_stderr(done.stderr)}")
    return done.stdout


def extract_thumbnail(
    video: Path, dest_jpg: Path, width: int = 320, *, untrusted: bool = False
) -> None:
    """Write a representative frame of ``video`` as a JPEG ``width`` pixels wide."""
    # The thumbnail filter picks the most typical frame of the first ones, which avoids the black
    # first frame of a fade-in that a plain "first frame" would give.
    graph = (
        ffmpeg.input(file_arg(video))
        .filter("thumbnail")
        .filter("scale", width, -2)
        .output(file_arg(dest_jpg), vframes=1, update=1, **{"q:v": 3})
    )
    run(graph, expected_duration_sec=0.0, output=dest_jpg, untrusted=untrusted)


def run(
    command: Sequence[str] | FFmpegGraph,
    *,
    expected_duration_sec: float,
    on_progress: Callable[[float], None] | None = None,
    cancel: threading.Event | None = None,
    output: Path | None = None,
    log_to: logging.Logger | None = None,
    untrusted: bool = False,
) -> None:
    """Run ffmpeg with ``command`` (arguments after ``ffmpeg``) until it ends.

    ``on_progress`` gets fractions 0..1 of ``expected_duration_sec`` of output written, on this
    thread. ``output`` is the file being written: it is removed when the run fails or is cancelled.
    ``untrusted``: every input is a file vidgen did not make, read as in :func:`probe`.

    Raises:
        JobCancelled: ``cancel`` was set; ffmpeg has been stopped.
        StorageError: the disk filled up.
        FFmpegError: ffmpeg failed; the message holds its meaningful last stderr lines.
    """
    logger = log_to or log
    arguments = _arguments(command)
    if untrusted:
        arguments = _restricted_inputs(arguments)
    argv = [FFMPEG, *GLOBAL_OPTIONS, *PROGRESS_OPTIONS, *arguments]
    logger.debug("ffmpeg argv: %s", argv)
    try:
        returncode, stderr = _supervise(argv, expected_duration_sec, on_progress, cancel)
    except BaseException:
        _remove(output)
        raise
    if returncode == 0:
        return
    _remove(output)
    logger.debug("ffmpeg stderr (exit %s):\n%s", returncode, stderr)
    raise _failure(returncode, _names_only(stderr, _file_arguments(argv)), output)


def _die_with_parent(parent_pid: int) -> None:
    """In the child before it becomes ffmpeg: killed when the thread that started it dies, so a
    worker killed with SIGKILL leaves no ffmpeg running on into the folder of the next attempt.
    (Linux sends it when the starting *thread* exits; ours waits for ffmpeg, so that is the
    worker's death.)"""
    _LIBC.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)
    if os.getppid() != parent_pid:  # the parent died before prctl: no signal would come
        os.kill(os.getpid(), signal.SIGKILL)


def _dying_with_us() -> Callable[[], None]:
    """The ``preexec_fn`` every ffmpeg and ffprobe is started with."""
    return functools.partial(_die_with_parent, os.getpid())


def _arguments(command: Sequence[str] | FFmpegGraph) -> list[str]:
    if isinstance(command, str):
        raise TypeError("pass ffmpeg arguments as a list, not one string")
    if isinstance(command, Sequence):
        return list(command)
    return command.get_args()


def _restricted_inputs(arguments: list[str]) -> list[str]:
    """The whitelists in front of every ``-i``: they are options of the input that follows."""
    restricted: list[str] = []
    for argument in arguments:
        if argument == "-i":
            restricted += _UNTRUSTED_INPUT
        restricted.append(argument)
    return restricted


def _supervise(
    argv: list[str],
    expected_duration_sec: float,
    on_progress: Callable[[float], None] | None,
    cancel: threading.Event | None,
) -> tuple[int, str]:
    """Start ffmpeg, relay progress, stop it on cancel; returns (exit code, stderr)."""
    try:
        proc = subprocess.Popen(
            argv,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            errors="replace",
            preexec_fn=_dying_with_us(),
        )
    except FileNotFoundError as exc:
        raise FFmpegError("ffmpeg is not installed (install the ffmpeg package)") from exc
    # The with-block closes both pipes; the reader threads drain them meanwhile, as a full stderr
    # pipe would block ffmpeg.
    with proc:
        assert proc.stdout is not None
        assert proc.stderr is not None
        progress: queue.Queue[float | None] = queue.Queue()
        stderr_lines: list[str] = []
        readers = [
            threading.Thread(
                target=_read_progress,
                args=(proc.stdout, expected_duration_sec, progress),
                daemon=True,
            ),
            threading.Thread(target=_read_lines, args=(proc.stderr, stderr_lines), daemon=True),
        ]
        for reader in readers:
            reader.start()
        try:
            _wait(proc, progress, on_progress, cancel)
        finally:
            if proc.poll() is None:
                _stop(proc)
            for reader in readers:
                reader.join()
    return proc.returncode, "".join(stderr_lines)


def _wait(
    proc: subprocess.Popen[str],
    progress: queue.Queue[float | None],
    on_progress: Callable[[float], None] | None,
    cancel: threading.Event | None,
) -> None:
    """Relay progress until ffmpeg closes its stdout (it exits then), checking for a cancel."""
    while True:
        if cancel is not None and cancel.is_set():
            _stop(proc)
            raise JobCancelled("the job was cancelled; ffmpeg was stopped")
        try:
            fraction = progress.get(timeout=POLL_INTERVAL_SEC)
        except queue.Empty:
            continue
        if fraction is None:
            break
        if on_progress is not None:
            on_progress(fraction)
    if proc.wait() == 0 and on_progress is not None:
        on_progress(1.0)


def _stop(proc: subprocess.Popen[str]) -> None:
    """SIGTERM lets ffmpeg close its files; SIGKILL after a grace period if it does not."""
    proc.terminate()
    try:
        proc.wait(timeout=TERMINATE_GRACE_SEC)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


def _read_progress(stream: IO[str], expected_sec: float, out: queue.Queue[float | None]) -> None:
    """Turn ``-progress`` key=value blocks into fractions of the expected output duration.

    ``None`` marks the end of the stream, so the waiting thread learns at once that ffmpeg is
    done instead of on its next poll.
    """
    for line in stream:
        key, _, value = line.strip().partition("=")
        if key == "out_time_us" and expected_sec > 0 and value.lstrip("-").isdigit():
            out.put(min(max(int(value) / 1e6 / expected_sec, 0.0), 1.0))
        elif key == "progress" and value == "end":
            out.put(1.0)
    out.put(None)


def _read_lines(stream: IO[str], lines: list[str]) -> None:
    lines.extend(stream)


def summarize_stderr(stderr: str, count: int = MESSAGE_LINES) -> str:
    """The last ``count`` meaningful lines of ffmpeg's stderr, joined for a person to read.

    Blank lines, repeats and closing boilerplate are skipped, and the ``[xfade @ 0x55…]`` address
    is reduced to the filter's name, so the message says what went wrong and nothing else.
    """
    kept: list[str] = []
    for raw in reversed(stderr.splitlines()):
        line = _ADDRESS.sub(r"\1: ", raw.strip())
        if not line or line in kept or line.startswith(_BOILERPLATE):
            continue
        kept.append(line)
        if len(kept) == count:
            break
    return "; ".join(reversed(kept))


def _names_only(stderr: str, paths: Sequence[Path]) -> str:
    """ffmpeg's text with each of ``paths`` (which it prints in full, ``file:`` prefix and all)
    written as its file name: a message for a person names no folder of this machine."""
    for path in sorted(paths, key=lambda p: len(str(p)), reverse=True):
        stderr = stderr.replace(file_arg(path), path.name).replace(str(path), path.name)
    return stderr


def _file_arguments(argv: Sequence[str]) -> list[Path]:
    """The files an argv names (inputs and outputs are all given as ``file:`` arguments)."""
    return [Path(arg.removeprefix("file:")) for arg in argv if arg.startswith("file:")]


def _failure(returncode: int, stderr: str, output: Path | None) -> Exception:
    target = f" writing {output.name}" if output else ""
    if _DISK_FULL in stderr:
        return StorageError(f"the disk is full (no space left on device){target}")
    if returncode < 0:
        name = signal.Signals(-returncode).name
        return FFmpegError(f"ffmpeg was killed by {name}{target} before it finished")
    reason = summarize_stderr(stderr) or "it printed no reason"
    return FFmpegError(f"ffmpeg failed{target} (exit code {returncode}): {reason}")


def _remove(path: Path | None) -> None:
    if path is not None:
        path.unlink(missing_ok=True)
