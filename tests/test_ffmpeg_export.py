"""The FFmpeg half of exporting, against the real ffmpeg: every output is checked with ffprobe."""

from __future__ import annotations

import json
import logging
import os
import signal
import statistics
import subprocess
import threading
import time
from pathlib import Path

import pytest

from stages import (
    ComfyUIStep,
    ExportPlan,
    ExportPlanError,
    FFmpegStep,
    build_export_plan,
    deliver_as_is_step,
    execute_ffmpeg_step,
    merge,
)
from stages.merge import ClipInput
from tests.fixtures.media import MakeClip
from tests.fixtures.pipeline import MountTmpfs
from vidgen.errors import FFmpegError, JobCancelled, StorageError
from vidgen.ffmpeg import (
    extract_thumbnail,
    ffmpeg_version,
    file_arg,
    filter_number,
    probe,
    run,
)
from vidgen.specs import (
    Engine,
    ExportSpec,
    InterpolateSpec,
    OutputFormat,
    Quality,
    TransitionSpec,
    TransitionType,
    UpscaleSpec,
)
from vidgen.validation import describe

# A source that never ends on its own, so a test can stop ffmpeg midway through.
ENDLESS = ["-f", "lavfi", "-re", "-i", "testsrc2=size=256x256:rate=25"]


def _children(folder: Path) -> list[int]:
    """This process's live ffmpeg children writing into ``folder`` (other tests in this process
    may leave other children running, such as a throwaway MariaDB or another test's ffmpeg)."""
    found: list[int] = []
    for task in Path(f"/proc/{os.getpid()}/task").iterdir():
        for pid in (task / "children").read_text().split():
            try:
                argv = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
            except OSError:
                continue  # it ended meanwhile
            if argv[0].endswith(b"ffmpeg") and str(folder).encode() in b" ".join(argv):
                found.append(int(pid))
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
    with pytest.raises(FFmpegError, match="No such file") as missing:
        probe(tmp_path / "missing.mp4")
    # ffprobe prints the whole path; a person is shown the file's name.
    assert "missing.mp4: No such file" in missing.value.user_message
    assert str(tmp_path) not in missing.value.user_message


def test_a_failed_run_names_its_files_without_their_folders(tmp_path: Path) -> None:
    out = tmp_path / "out.mp4"
    with pytest.raises(FFmpegError) as caught:
        run(
            ["-i", file_arg(tmp_path / "gone.mp4"), file_arg(out)],
            expected_duration_sec=1.0,
            output=out,
        )
    assert "gone.mp4: No such file or directory" in caught.value.user_message
    assert str(tmp_path) not in caught.value.user_message


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
        for pid in _children(tmp_path):
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
    assert _children(tmp_path) == []
    assert not out.exists()


@pytest.fixture
def tiny_disk(tmp_path: Path, mount_tmpfs: MountTmpfs) -> Path:
    """A 1 MiB tmpfs, so a write runs out of space for real."""
    return mount_tmpfs(tmp_path / "disk", "1m")


def test_full_disk_is_a_storage_error(tiny_disk: Path, make_clip: MakeClip) -> None:
    out = tiny_disk / "out.mkv"
    with pytest.raises(StorageError, match=r"the disk is full .* writing out\.mkv$") as full:
        run(  # raw frames: 6 MB for this clip, however well it compresses
            ["-i", file_arg(make_clip()), "-c:v", "rawvideo", file_arg(out)],
            expected_duration_sec=2.0,
            output=out,
        )
    assert str(tiny_disk) not in full.value.user_message  # names, never this machine's folders
    assert list(tiny_disk.iterdir()) == []


# --- planning and running exports ---------------------------------------------------------------

FADE = TransitionSpec(TransitionType.FADE, 0.5)


def _stream(path: Path) -> dict[str, str]:
    """ffprobe's view of the first video stream, with packets counted."""
    entries = (
        "stream=codec_name,codec_tag_string,pix_fmt,width,height,avg_frame_rate,nb_read_packets"
        ":format=duration"
    )
    select = ["-select_streams", "v:0", "-count_packets", "-show_entries", entries]
    out = subprocess.run(
        ["ffprobe", "-v", "error", *select, "-of", "json", file_arg(path)],
        capture_output=True,
        text=True,
        check=True,
    )
    data = json.loads(out.stdout)
    stream: dict[str, str] = {k: str(v) for k, v in data["streams"][0].items()}
    stream["duration"] = f"{float(data['format']['duration']):.3f}"
    return stream


def _check(path: Path, codec: str, size: str, fps: str, frames: int, duration: float) -> None:
    stream = _stream(path)
    assert stream["codec_name"] == codec
    assert f"{stream['width']}x{stream['height']}" == size
    assert stream["avg_frame_rate"] == fps
    assert int(stream["nb_read_packets"]) == frames
    assert float(stream["duration"]) == pytest.approx(duration, abs=0.02)
    if codec != "gif":
        assert stream["pix_fmt"] == "yuv420p"


def _export(
    spec: ExportSpec,
    clips: list[Path],
    tmp_path: Path,
    size: tuple[int, int] = (256, 256),
    fps: float = 8,
) -> ExportPlan:
    """Plan and run an export that needs no ComfyUI; returns the plan (output in tmp_path)."""
    inputs = [ClipInput.from_media(probe(c)) for c in clips]
    output = tmp_path / f"out.{spec.format.extension}"
    plan = build_export_plan(
        spec, inputs, size=size, fps=fps, output=output, work_dir=tmp_path, chunk_frames=16
    )
    for step in plan.steps:
        assert isinstance(step, FFmpegStep)
        execute_ffmpeg_step(step)
    assert sorted(p.name for p in tmp_path.iterdir()) == [output.name]
    return plan


@pytest.fixture(scope="session")
def small_clips(make_clip: MakeClip) -> list[Path]:
    """Three 256x256 clips, 8 fps, 16 frames: the size does not matter for joining, speed does."""
    first = make_clip(256, 256, 8, 2)
    copies = [first.with_name(f"small_{i}.mp4") for i in range(3)]
    for copy in copies:
        copy.write_bytes(first.read_bytes())
    return copies


@pytest.mark.parametrize(
    "transition",
    [
        TransitionSpec(TransitionType.FADE, 0.5),
        TransitionSpec(TransitionType.DISSOLVE, 0.5),
        *(TransitionSpec(TransitionType.WIPE, 0.5, d) for d in ("left", "right", "up", "down")),
    ],
    ids=lambda t: f"{t.type.value}-{t.direction}",
)
def test_three_clips_join_with_each_transition(
    transition: TransitionSpec, small_clips: list[Path], tmp_path: Path
) -> None:
    # WebM, because MP4 would hide a frame missing at a join behind a duplicate.
    spec = ExportSpec(transition=transition, format=OutputFormat.WEBM, quality=Quality.DRAFT)
    plan = _export(spec, small_clips, tmp_path)
    name = merge.transition_name(transition)
    args = " ".join(plan.steps[0].args) if isinstance(plan.steps[0], FFmpegStep) else ""
    assert f"xfade=transition={name}:duration=0.5:offset=1.5" in args
    assert "offset=3" in args
    _check(plan.output, "vp9", "256x256", "8/1", 40, 5.0)  # 3 x 2 s - 2 x 0.5 s


def test_cuts_between_matching_clips_copy_the_packets(
    small_clips: list[Path], tmp_path: Path
) -> None:
    plan = _export(ExportSpec(), small_clips, tmp_path)
    (step,) = plan.steps
    assert isinstance(step, FFmpegStep)
    assert step.stream_copy
    assert step.args[:4] == ("-f", "concat", "-safe", "0")
    assert "-filter_complex" not in step.args
    assert step.args[step.args.index("-c:v") + 1] == "copy"
    _check(plan.output, "h264", "256x256", "8/1", 48, 6.0)


@pytest.mark.parametrize("transition", [TransitionSpec(), FADE], ids=["none", "fade"])
def test_clips_of_other_sizes_and_rates_are_normalised(
    transition: TransitionSpec, make_clip: MakeClip, tmp_path: Path
) -> None:
    clips = [make_clip(320, 180, 12, 2), make_clip(256, 256, 8, 2), make_clip(192, 256, 24, 2)]
    spec = ExportSpec(transition=transition, format=OutputFormat.WEBM, quality=Quality.DRAFT)
    plan = _export(spec, clips, tmp_path)
    (step,) = plan.steps
    assert isinstance(step, FFmpegStep)
    assert not step.stream_copy
    frames, duration = (48, 6.0) if transition.type is TransitionType.NONE else (40, 5.0)
    _check(plan.output, "vp9", "256x256", "8/1", frames, duration)


def _top_level_boxes(path: Path) -> list[str]:
    data = path.read_bytes()
    boxes, offset = [], 0
    while offset < len(data):
        size = int.from_bytes(data[offset : offset + 4], "big")
        boxes.append(data[offset + 4 : offset + 8].decode())
        offset += size
    return boxes


def test_mp4_is_h264_with_the_index_first(small_clips: list[Path], tmp_path: Path) -> None:
    plan = _export(ExportSpec(transition=FADE, quality=Quality.HIGH), small_clips, tmp_path)
    boxes = _top_level_boxes(plan.output)
    assert boxes.index("moov") < boxes.index("mdat")
    assert _stream(plan.output)["codec_tag_string"] == "avc1"
    assert not probe(plan.output).has_audio


def test_h265_is_tagged_hvc1(small_clips: list[Path], tmp_path: Path) -> None:
    spec = ExportSpec(transition=FADE, format=OutputFormat.MP4_H265, quality=Quality.DRAFT)
    plan = _export(spec, small_clips, tmp_path)
    _check(plan.output, "hevc", "256x256", "8/1", 40, 5.0)
    assert _stream(plan.output)["codec_tag_string"] == "hvc1"
    boxes = _top_level_boxes(plan.output)
    assert boxes.index("moov") < boxes.index("mdat")


def test_webm_is_vp9(small_clips: list[Path], tmp_path: Path) -> None:
    spec = ExportSpec(transition=FADE, format=OutputFormat.WEBM, quality=Quality.DRAFT)
    plan = _export(spec, small_clips, tmp_path)
    # WebM keeps timestamps as they are (MP4 would fill a gap with a duplicate frame), so the
    # frame count shows that no frame went missing at a join.
    _check(plan.output, "vp9", "256x256", "8/1", 40, 5.0)


def test_gif_is_at_most_512_wide_at_the_clips_rate(small_clips: list[Path], tmp_path: Path) -> None:
    # 256x256 upscaled 4x is 1024 wide: the GIF must come down to 512, in the same run.
    spec = ExportSpec(transition=FADE, upscale=UpscaleSpec(4), format=OutputFormat.GIF)
    plan = _export(spec, small_clips, tmp_path)
    assert len(plan.steps) == 1
    _check(plan.output, "gif", "512x512", "8/1", 40, 5.0)


@pytest.mark.parametrize(("fps", "played", "frames"), [(24, 24.0, 120), (30, 25.0, 125)])
def test_a_gif_keeps_an_interpolated_rate_up_to_25_fps(
    small_clips: list[Path], tmp_path: Path, fps: int, played: float, frames: int
) -> None:
    interpolate = InterpolateSpec(fps=fps, engine=Engine.FFMPEG)
    spec = ExportSpec(transition=FADE, interpolate=interpolate, format=OutputFormat.GIF)
    plan = _export(spec, small_clips, tmp_path)
    assert plan.shape.fps == played
    stream = _stream(plan.output)
    numerator, denominator = stream["avg_frame_rate"].split("/")
    # Delays are whole hundredths: 24 fps alternates 4/100 and 5/100 s, 25 fps is 4/100 s each.
    assert int(numerator) / int(denominator) == pytest.approx(played, abs=0.05)
    assert int(stream["nb_read_packets"]) == frames
    assert float(stream["duration"]) == pytest.approx(5.0, abs=0.05)


@pytest.mark.parametrize(("scale", "size"), [(2, "1024x1024"), (4, "2048x2048")])
def test_lanczos_upscale_multiplies_each_side(
    scale: int, size: str, make_clip: MakeClip, tmp_path: Path
) -> None:
    spec = ExportSpec(upscale=UpscaleSpec(scale), quality=Quality.DRAFT)
    plan = _export(spec, [make_clip()], tmp_path, size=(512, 512))
    assert "flags=lanczos" in " ".join(plan.steps[0].args)  # type: ignore[union-attr]
    _check(plan.output, "h264", size, "8/1", 16, 2.0)


def test_no_side_may_exceed_4096(make_clip: MakeClip, tmp_path: Path) -> None:
    clip = ClipInput.from_media(probe(make_clip()))
    spec = ExportSpec(upscale=UpscaleSpec(4))
    with pytest.raises(ExportPlanError, match="gives 4096x8192, but no side may exceed 4096") as e:
        build_export_plan(
            spec,
            [clip],
            size=(1024, 2048),
            fps=8,
            output=tmp_path / "o.mp4",
            work_dir=tmp_path,
            chunk_frames=16,
        )
    assert e.value.path == "export.upscale.scale"


@pytest.mark.parametrize(("fps", "frames"), [(24, 48), (30, 60)])
def test_minterpolate_keeps_the_duration(
    fps: int, frames: int, make_clip: MakeClip, tmp_path: Path
) -> None:
    size = 512 if fps == 24 else 256
    spec = ExportSpec(interpolate=InterpolateSpec(fps), quality=Quality.DRAFT)
    plan = _export(spec, [make_clip(size, size, 8, 2)], tmp_path, size=(size, size))
    _check(plan.output, "h264", f"{size}x{size}", f"{fps}/1", frames, 2.0)


def test_ffmpeg_stages_run_as_one_ffmpeg(
    small_clips: list[Path], tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    spec = ExportSpec(
        transition=FADE,
        upscale=UpscaleSpec(2),
        interpolate=InterpolateSpec(24),
        quality=Quality.DRAFT,
    )
    with caplog.at_level(logging.DEBUG, logger="vidgen.ffmpeg"):
        plan = _export(spec, small_clips, tmp_path)
    runs = [r for r in caplog.records if r.getMessage().startswith("ffmpeg argv")]
    assert len(runs) == 1
    assert plan.steps[0].stages == ("merge", "interpolate", "upscale", "encode")  # type: ignore[union-attr]
    _check(plan.output, "h264", "512x512", "24/1", 120, 5.0)


def _fake_comfyui(step: ComfyUIStep) -> None:
    """What the worker gets back from ComfyUI, made with ffmpeg to the contract's numbers."""
    width, height = step.output_size
    rate = filter_number(step.output_fps)
    scale = ["-vf", f"scale={width}:{height},fps={rate}", "-frames:v", str(step.output_frames)]
    run(
        ["-i", file_arg(step.input), *scale, "-c:v", "libx264", file_arg(step.output)],
        expected_duration_sec=0.0,
    )


@pytest.mark.parametrize(("fps", "frames"), [(24, 48), (30, 60)])
def test_comfyui_rife_result_keeps_the_duration(
    fps: int, frames: int, make_clip: MakeClip, tmp_path: Path
) -> None:
    clip = ClipInput.from_media(probe(make_clip(256, 256, 8, 2)))
    spec = ExportSpec(interpolate=InterpolateSpec(fps, Engine.COMFYUI, "rife47.pth"))
    output = tmp_path / "out.mp4"
    plan = build_export_plan(
        spec, [clip], size=(256, 256), fps=8, output=output, work_dir=tmp_path, chunk_frames=16
    )
    rife, last = plan.steps
    assert isinstance(rife, ComfyUIStep)
    assert isinstance(last, FFmpegStep)
    assert rife.input == clip.path  # a lone matching clip goes to ComfyUI as it is
    assert rife.output_frames == 15 * rife.multiplier + 1  # 46 at 24 fps, 61 at 30 fps
    _fake_comfyui(rife)
    execute_ffmpeg_step(last)
    _check(output, "h264", "256x256", f"{fps}/1", frames, 2.0)


def test_comfyui_upscale_splits_the_run_around_it(small_clips: list[Path], tmp_path: Path) -> None:
    inputs = [ClipInput.from_media(probe(c)) for c in small_clips]
    spec = ExportSpec(transition=FADE, upscale=UpscaleSpec(4, Engine.COMFYUI, "RealESRGAN_x4plus"))
    output = tmp_path / "out.mp4"
    plan = build_export_plan(
        spec, inputs, size=(256, 256), fps=8, output=output, work_dir=tmp_path, chunk_frames=16
    )
    merged, esrgan, rest = plan.steps
    assert isinstance(merged, FFmpegStep)
    assert isinstance(esrgan, ComfyUIStep)
    assert isinstance(rest, FFmpegStep)
    assert merged.stages == ("merge", "intermediate")
    assert (esrgan.input, esrgan.output_size, esrgan.output_frames) == (
        merged.output,
        (1024, 1024),
        40,
    )
    assert rest.inputs == (esrgan.output,)
    execute_ffmpeg_step(merged)
    _check(merged.output, "h264", "256x256", "8/1", 40, 5.0)
    _fake_comfyui(esrgan)
    execute_ffmpeg_step(rest)
    _check(output, "h264", "1024x1024", "8/1", 40, 5.0)


def test_a_lone_clip_is_delivered_as_it_is(tmp_path: Path) -> None:
    clip = tmp_path / "with sound.mov"
    video = ["-f", "lavfi", "-i", "testsrc2=size=320x240:rate=8:duration=2"]
    sound = ["-f", "lavfi", "-i", "sine=duration=2"]
    codecs = ["-c:v", "libx264", "-pix_fmt", "yuv420p", "-c:a", "aac"]
    subprocess.run(["ffmpeg", "-v", "error", *video, *sound, *codecs, file_arg(clip)], check=True)
    output = tmp_path / "out.mp4"
    step = deliver_as_is_step(ClipInput.from_media(probe(clip)), output)
    assert step.stream_copy
    execute_ffmpeg_step(step)
    _check(output, "h264", "320x240", "8/1", 16, 2.0)
    assert not probe(output).has_audio
    boxes = _top_level_boxes(output)
    assert boxes.index("moov") < boxes.index("mdat")


def test_a_transition_longer_than_a_clip_is_refused(
    small_clips: list[Path], tmp_path: Path
) -> None:
    inputs = [ClipInput.from_media(probe(c)) for c in small_clips]
    spec = ExportSpec(transition=TransitionSpec(TransitionType.DISSOLVE, 1.5))
    with pytest.raises(
        ExportPlanError,
        match=r"too long for clip 2: it lasts 2.00 s and has 2 .* shorter than 1.00 s",
    ) as caught:
        build_export_plan(
            spec,
            inputs,
            size=(256, 256),
            fps=8,
            output=tmp_path / "o.mp4",
            work_dir=tmp_path,
            chunk_frames=16,
        )
    assert caught.value.path == "export.transition.duration"


def test_describe_names_what_each_step_makes(small_clips: list[Path], tmp_path: Path) -> None:
    inputs = [ClipInput.from_media(probe(c)) for c in small_clips]
    spec = ExportSpec(
        transition=FADE,
        upscale=UpscaleSpec(2),
        interpolate=InterpolateSpec(24, Engine.COMFYUI, "rife47.pth"),
    )
    plan = build_export_plan(
        spec,
        inputs,
        size=(256, 256),
        fps=8,
        output=tmp_path / "o.mp4",
        work_dir=tmp_path,
        chunk_frames=16,
    )
    lines = describe(plan)
    assert lines[0].startswith(
        "output: 512x512, 24 fps, 5.000 s (120 frames), mp4 standard, about "
    )
    assert "comfyui: interpolate with rife47.pth -> 256x256, 118 frames" in lines[2]
    assert "upscale 2x to 512x512 (lanczos)" in lines[3]
    assert len(lines) == 1 + len(plan.steps)
    # Progress is weighted by each step's cost, not split evenly.
    shares = [plan.progress(i, 1.0) - plan.progress(i, 0.0) for i in range(len(plan.steps))]
    assert plan.progress(len(plan.steps) - 1, 1.0) == pytest.approx(1.0)
    assert shares != pytest.approx([1 / len(shares)] * len(shares))


def test_cancelled_step_leaves_no_files(small_clips: list[Path], tmp_path: Path) -> None:
    inputs = [ClipInput.from_media(probe(c)) for c in small_clips]
    spec = ExportSpec(transition=FADE, interpolate=InterpolateSpec(60), quality=Quality.HIGH)
    plan = build_export_plan(
        spec,
        inputs,
        size=(256, 256),
        fps=8,
        output=tmp_path / "o.mp4",
        work_dir=tmp_path,
        chunk_frames=16,
    )
    (step,) = plan.steps
    assert isinstance(step, FFmpegStep)
    cancel = threading.Event()
    with pytest.raises(JobCancelled):
        execute_ffmpeg_step(step, cancel=cancel, on_progress=lambda _f: cancel.set())
    assert _children(tmp_path) == []
    assert list(tmp_path.iterdir()) == []


def test_full_disk_during_an_export_leaves_no_file(
    tiny_disk: Path, small_clips: list[Path]
) -> None:
    inputs = [ClipInput.from_media(probe(c)) for c in small_clips]
    spec = ExportSpec(transition=FADE, upscale=UpscaleSpec(4), format=OutputFormat.GIF)
    plan = build_export_plan(
        spec,
        inputs,
        size=(256, 256),
        fps=8,
        output=tiny_disk / "o.gif",
        work_dir=tiny_disk,
        chunk_frames=16,
    )
    (step,) = plan.steps
    assert isinstance(step, FFmpegStep)
    with pytest.raises(StorageError, match="is full"):
        execute_ffmpeg_step(step)
    assert list(tiny_disk.iterdir()) == []


# x264 on the 512x512 clip takes this long on the idle 2-core reference machine.
REFERENCE_IDLE_SEC = 0.25
# Representative exports whose estimated time is checked against real runs.
REPRESENTATIVE = {  # name: (export, how many of the three 512x512 clips)
    "copy join": (ExportSpec(), 3),
    "fade, mp4 standard": (ExportSpec(transition=FADE), 3),
    "fade + 2x lanczos, mp4 high": (
        ExportSpec(transition=FADE, upscale=UpscaleSpec(2), quality=Quality.HIGH),
        3,
    ),
    "8->24 minterpolate, mp4 draft": (
        ExportSpec(interpolate=InterpolateSpec(24), quality=Quality.DRAFT),
        1,
    ),
    "fade, gif": (ExportSpec(transition=FADE, format=OutputFormat.GIF), 3),
}


def _reference_sec(clip: Path, tmp_path: Path) -> float:
    """Time of a fixed x264 run, to tell a slow export from a machine busy with other work."""
    started = time.perf_counter()
    run(
        [
            "-i",
            file_arg(clip),
            "-c:v",
            "libx264",
            "-preset",
            "medium",
            file_arg(tmp_path / "ref.mp4"),
        ],
        expected_duration_sec=0.0,
    )
    return time.perf_counter() - started


@pytest.mark.slow
@pytest.mark.parametrize("name", list(REPRESENTATIVE))
def test_estimates_are_within_a_factor_of_two(name: str, clips: list[Path], tmp_path: Path) -> None:
    # The estimates were calibrated on an idle machine. A machine busy with other work (other
    # tests, other users) can only make a run slower: the reference run measures by how much,
    # and the upper bound stretches by that factor while the lower bound stays.
    ratios, loads = [], []
    for attempt in range(3):
        work = tmp_path / str(attempt)
        work.mkdir()
        loads.append(max(_reference_sec(clips[0], work) / REFERENCE_IDLE_SEC, 1.0))
        (work / "ref.mp4").unlink()
        spec, count = REPRESENTATIVE[name]
        inputs = [ClipInput.from_media(probe(c)) for c in clips[:count]]
        output = work / f"out.{spec.format.extension}"
        plan = build_export_plan(
            spec, inputs, size=(512, 512), fps=8, output=output, work_dir=work, chunk_frames=16
        )
        started = time.perf_counter()
        for step in plan.steps:
            assert isinstance(step, FFmpegStep)
            execute_ffmpeg_step(step)
        ratios.append((time.perf_counter() - started) / plan.estimated_sec)
    assert 0.5 <= statistics.median(ratios) <= 2.0 * statistics.median(loads), (ratios, loads)
