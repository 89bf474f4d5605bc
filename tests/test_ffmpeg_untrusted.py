"""ffmpeg and ffprobe on a file vidgen did not make read that file alone, as a plain container:
a playlist or a concat list saved under a video's name is refused, with words for what it is,
instead of being followed to the files it names."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from tests.fixtures.media import MakeClip, png_bytes
from vidgen.errors import FFmpegError
from vidgen.ffmpeg import extract_thumbnail, probe


@pytest.fixture
def outside_video(tmp_path: Path, make_clip: MakeClip) -> Path:
    segment = tmp_path / "elsewhere" / "secret.ts"
    segment.parent.mkdir()
    source = make_clip(width=64, height=64, fps=8, duration_sec=1.0)
    quiet = ["-hide_banner", "-loglevel", "error", "-nostdin", "-y"]
    subprocess.run(["ffmpeg", *quiet, "-i", str(source), "-c", "copy", str(segment)], check=True)
    return segment


def test_a_playlist_is_followed_unless_the_input_is_untrusted(
    tmp_path: Path, outside_video: Path
) -> None:
    playlist = tmp_path / "inbox" / "clip.mp4"
    playlist.parent.mkdir()
    playlist.write_text(
        f"#EXTM3U\n#EXT-X-TARGETDURATION:2\n#EXTINF:1.0,\n{outside_video}\n#EXT-X-ENDLIST\n"
    )
    assert probe(playlist).width == 64  # what intake did before: the outside video, read
    with pytest.raises(FFmpegError) as refused:
        probe(playlist, untrusted=True)
    assert refused.value.user_message == (
        "clip.mp4 is an HLS playlist, not a video file (MP4, MOV, MKV, WebM, AVI or GIF are read)"
    )
    with pytest.raises(FFmpegError):
        extract_thumbnail(playlist, tmp_path / "thumb.jpg", untrusted=True)
    assert not (tmp_path / "thumb.jpg").exists()


@pytest.mark.parametrize(
    ("content", "words"),
    [
        (b"ffconcat version 1.0\nfile secret.ts\n", "an ffconcat list"),
        (png_bytes(), "a still image"),
    ],
    ids=["concat", "image"],
)
def test_other_formats_are_named_in_the_refusal(
    tmp_path: Path, outside_video: Path, content: bytes, words: str
) -> None:
    fake = outside_video.parent / "intro.mp4"
    fake.write_bytes(content)
    with pytest.raises(FFmpegError) as refused:
        probe(fake, untrusted=True)
    assert refused.value.user_message.startswith(f"intro.mp4 is {words}, not a video file")
    assert str(fake.parent) not in refused.value.user_message


def test_plain_containers_are_read(tmp_path: Path, make_clip: MakeClip) -> None:
    source = make_clip(width=64, height=64, fps=8, duration_sec=1.0)
    quiet = ["-hide_banner", "-loglevel", "error", "-nostdin", "-y"]
    for extension in ("mkv", "webm", "avi", "gif", "mov"):
        target = tmp_path / f"clip.{extension}"
        subprocess.run(["ffmpeg", *quiet, "-i", str(source), str(target)], check=True)
        info = probe(target, untrusted=True)
        assert (info.width, info.height) == (64, 64), extension
        extract_thumbnail(target, tmp_path / f"{extension}.jpg", untrusted=True)
        assert (tmp_path / f"{extension}.jpg").stat().st_size > 0


def test_a_damaged_video_is_named_without_its_folder(tmp_path: Path, make_clip: MakeClip) -> None:
    broken = tmp_path / "broken.mp4"
    broken.write_bytes(make_clip().read_bytes()[:2000])
    with pytest.raises(FFmpegError) as failed:
        probe(broken, untrusted=True)
    assert failed.value.user_message.startswith("broken.mp4 is not a video ffmpeg can read: ")
    assert str(tmp_path) not in failed.value.user_message
