"""Nothing from outside the inbox reaches storage: a link swapped in while intake reads, a
playlist or concat list named like a video, a symbolic link or a pipe dropped as a manifest,
files over the limits, a decompression bomb. And an imported video is stored once, however many
clips name it. Real files, real ffmpeg, the real MariaDB."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from sqlalchemy import select

from tests.fixtures.database import make_settings
from tests.fixtures.inbox import drop, old_file
from tests.fixtures.media import MakeClip, png_bytes
from tests.fixtures.pipeline import StartWorker, job_ended, wait_for
from vidgen.config import Settings
from vidgen.db.models import Job, JobType, Manifest
from vidgen.db.session import Database
from watcher.intake import Intake, Outcome

SECRET = b"THE-DATABASE-PASSWORD-IS-HUNTER2"
SWAP_MANIFESTS = 150


def url_of(database: Database) -> str:
    return database.engine.url.render_as_string(hide_password=False)


@pytest.fixture
def inbox(settings: Settings) -> Path:
    return settings.inboxes[0].path


def files_holding(root: Path, needle: bytes) -> list[Path]:
    found = []
    for folder, _, names in os.walk(root):
        for name in names:
            path = Path(folder) / name
            if path.is_file() and not path.is_symlink() and needle in path.read_bytes():
                found.append(path)
    return found


# An attacker's process: swaps each reference (or the folder holding them) for a link to the
# secret and back, as fast as it can, until the stop file appears; prints how often.
_SWAPPER = """
import os, sys, time
from pathlib import Path
inbox, secret, mode, stop = Path(sys.argv[1]), Path(sys.argv[2]), sys.argv[3], Path(sys.argv[4])
real, refs, past, swaps = Path(sys.argv[5]).read_bytes(), inbox / "refs", time.time() - 60, 0
while not stop.exists():
    if mode == "file":
        name = refs / f"g{swaps % 10}.png"
        (refs / ".link").symlink_to(secret)
        (refs / ".link").replace(name)
        (refs / ".real").write_bytes(real)
        os.utime(refs / ".real", (past, past))
        (refs / ".real").replace(name)
    else:
        refs.rename(inbox / ".refs-real")
        (inbox / ".refs-link").symlink_to(secret.parent)
        (inbox / ".refs-link").rename(refs)
        refs.rename(inbox / ".refs-link")
        (inbox / ".refs-link").unlink()
        (inbox / ".refs-real").rename(refs)
    swaps += 1
print(swaps)
"""
# Ten references per manifest: every intake reads each twice (before the claim, then its copy).
_RACED = "project: Race\nclips:\n" + "".join(
    f"  - {{prompt: a girl, image: refs/g{n}.png}}\n" for n in range(10)
)


@pytest.mark.slow
def test_a_link_swapped_in_while_intake_reads_never_reaches_storage(
    settings: Settings, database: Database, inbox: Path, tmp_path: Path
) -> None:
    # The secret is a valid PNG too: only where it lies may keep it out.
    secret = old_file(tmp_path / "secret" / "girl.png", png_bytes(9, 9) + SECRET)
    real = old_file(tmp_path / "real.png", png_bytes(8, 8))
    for n in range(10):
        old_file(inbox / "refs" / f"g{n}.png", real.read_bytes())
    intake = Intake(settings, database)
    outcomes: list[Outcome] = []
    swaps = 0
    for mode, tries in (("file", SWAP_MANIFESTS), ("folder", SWAP_MANIFESTS // 3)):
        stop = tmp_path / f"stop-{mode}"
        argv = [sys.executable, "-c", _SWAPPER, str(inbox), str(secret), mode, str(stop), str(real)]
        swapper = subprocess.Popen(argv, stdout=subprocess.PIPE, text=True)
        try:
            outcomes += [
                drop(intake, inbox, _RACED, f"{mode}{n}.yaml").outcome for n in range(tries)
            ]
        finally:
            stop.touch()
            output, _ = swapper.communicate(timeout=30)
        swaps += int(output)
    assert files_holding(settings.storage, SECRET) == []
    assert list((inbox / ".vidgen" / "processing").iterdir()) == []
    assert set(outcomes) <= {Outcome.ACCEPTED, Outcome.UNCHANGED, Outcome.REJECTED}
    assert swaps > SWAP_MANIFESTS  # the links really raced the reads:
    assert Outcome.REJECTED in outcomes  # a link was met…
    assert {Outcome.ACCEPTED, Outcome.UNCHANGED} & set(outcomes)  # …and so was the real file


def test_an_hls_playlist_named_like_a_video_is_refused(
    settings: Settings, database: Database, inbox: Path, tmp_path: Path, make_clip: MakeClip
) -> None:
    segment = tmp_path / "outside" / "secret.ts"
    segment.parent.mkdir()
    quiet = ["-hide_banner", "-loglevel", "error", "-nostdin", "-y"]
    source = make_clip(width=64, height=64, fps=8, duration_sec=1.0)
    subprocess.run(["ffmpeg", *quiet, "-i", str(source), "-c", "copy", str(segment)], check=True)
    playlist = f"#EXTM3U\n#EXT-X-TARGETDURATION:2\n#EXTINF:1.0,\n{segment}\n#EXT-X-ENDLIST\n"
    old_file(inbox / "clip.mp4", playlist.encode())
    result = drop(Intake(settings, database), inbox, "video: clip.mp4\n")
    assert result.outcome is Outcome.REJECTED
    assert result.message == (
        "trip.yaml:1: video: clip.mp4 is an HLS playlist, not a video file "
        "(MP4, MOV, MKV, WebM, AVI or GIF are read)"
    )
    assert files_holding(settings.storage, segment.read_bytes()[-4000:]) == []
    assert list(settings.outbox.iterdir()) == []


def test_a_concat_list_and_a_linked_folder_are_refused(
    settings: Settings, database: Database, inbox: Path, tmp_path: Path, make_clip: MakeClip
) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    secret_video = outside / "secret.mp4"
    secret_video.write_bytes(make_clip(width=64, height=64, fps=8, duration_sec=1.0).read_bytes())
    old_file(outside / "list.mp4", b"ffconcat version 1.0\nfile secret.mp4\n")
    (inbox / "footage").mkdir()
    (inbox / "footage" / "out").symlink_to(outside)  # a linked folder inside the inbox
    old_file(inbox / "footage" / "list.mp4", b"ffconcat version 1.0\nfile out/secret.mp4\n")
    (inbox / "linked").symlink_to(outside)
    text = "clips:\n  - video: footage/list.mp4\n  - video: linked/list.mp4\n"
    result = drop(Intake(settings, database), inbox, text)
    assert result.outcome is Outcome.REJECTED
    assert result.message.splitlines() == [
        (
            "trip.yaml:2: clips[0].video: footage/list.mp4 is an ffconcat list, not a video "
            "file (MP4, MOV, MKV, WebM, AVI or GIF are read)"
        ),
        (
            "trip.yaml:3: clips[1].video: linked/list.mp4 is reached through a symbolic link "
            "(linked); vidgen reads only real files inside the inbox folder"
        ),
    ]
    assert files_holding(settings.storage, secret_video.read_bytes()[-4000:]) == []
    assert list(settings.outbox.iterdir()) == []


def test_a_linked_manifest_and_a_pipe_are_refused_without_being_read(
    settings: Settings, database: Database, inbox: Path, tmp_path: Path
) -> None:
    secret = tmp_path / "secret.yaml"
    secret.write_text("prompt: a fox from outside\n")
    (inbox / "link.yaml").symlink_to(secret)
    os.mkfifo(inbox / "pipe.yaml")  # opening it for reading would block a reader for ever
    intake = Intake(settings, database)
    linked = intake.process(inbox / "link.yaml")
    piped = intake.process(inbox / "pipe.yaml")
    assert (linked.outcome, piped.outcome) == (Outcome.REJECTED, Outcome.REJECTED)
    assert linked.message == (
        "link.yaml:1: (manifest): link.yaml is a symbolic link; vidgen reads only real files "
        "inside the inbox folder"
    )
    assert piped.message == (
        "pipe.yaml:1: (manifest): pipe.yaml is not a regular file (a pipe, socket or device)"
    )
    assert (inbox / "rejected" / "link.yaml").is_symlink()  # the link moved, not its target
    assert secret.read_text() == "prompt: a fox from outside\n"
    with database.session() as session:
        assert session.scalars(select(Manifest)).all() == []


@pytest.mark.parametrize(
    ("limits", "files", "text", "message"),
    [
        (
            {"imageBytes": 1000},
            {"big.png": png_bytes(64, 64) + b"\0" * 2000},
            "prompt: a\nimage: big.png\n",
            "trip.yaml:2: image: big.png is {size}; a referenced image may be at most "
            "1.0 kB (limits.imageBytes)",
        ),
        (
            {},
            {"bomb.png": png_bytes(8, 8, declared=(16000, 16000))},
            "prompt: a\nimage: bomb.png\n",
            "trip.yaml:2: image: bomb.png is 16000x16000 pixels (256.0 megapixels); a "
            "referenced image may have at most 64.0 megapixels (limits.imagePixels)",
        ),
        (
            {"manifestBytes": 1500},
            {"a.png": png_bytes(30, 30) + bytes(1000), "b.png": png_bytes(31, 31) + bytes(1000)},
            "clips:\n  - {prompt: a, image: a.png}\n  - {prompt: b, image: b.png}\n",
            "trip.yaml:3: clips[1].image: b.png brings the files this manifest names to "
            "{total}; together they may be at most 1.5 kB (limits.manifestBytes)",
        ),
    ],
    ids=["image-bytes", "decompression-bomb", "manifest-bytes"],
)
def test_images_over_the_limits_are_refused(
    tmp_path: Path,
    database: Database,
    limits: dict[str, int],
    files: dict[str, bytes],
    text: str,
    message: str,
) -> None:
    settings = make_settings(tmp_path, url_of(database), limits=limits)
    inbox = settings.inboxes[0].path
    for name, data in files.items():
        old_file(inbox / name, data)
    sizes = [len(data) for data in files.values()]
    result = drop(Intake(settings, database), inbox, text)
    assert result.outcome is Outcome.REJECTED
    size, total = f"{sizes[0] / 1e3:.1f} kB", f"{sum(sizes) / 1e3:.1f} kB"
    assert result.message == message.format(size=size, total=total)
    assert not (settings.storage / ".intake").exists() or not any(
        (settings.storage / ".intake").iterdir()
    )


def test_videos_over_the_limits_are_refused(
    tmp_path: Path, database: Database, make_clip: MakeClip
) -> None:
    clip = make_clip(width=64, height=64, fps=8, duration_sec=1.0)
    limits = {"videoBytes": clip.stat().st_size - 1}
    settings = make_settings(tmp_path, url_of(database), limits=limits)
    inbox = settings.inboxes[0].path
    os.link(clip, inbox / "intro.mp4")
    intake = Intake(settings, database)
    size = clip.stat().st_size
    assert drop(intake, inbox, "video: intro.mp4\n").message == (
        f"trip.yaml:1: video: intro.mp4 is {size / 1e3:.1f} kB; an imported video may be at "
        f"most {(size - 1) / 1e3:.1f} kB (limits.videoBytes)"
    )
    settings = make_settings(tmp_path, url_of(database), limits={"videoPixels": 4095})
    assert drop(Intake(settings, database), inbox, "video: intro.mp4\n").message == (
        "trip.yaml:1: video: intro.mp4 is 64x64 pixels per frame; an imported video may have "
        "at most 4,095 pixels per frame (limits.videoPixels)"
    )


def test_an_imported_video_named_by_many_clips_is_stored_once(
    settings: Settings,
    database: Database,
    inbox: Path,
    make_clip: MakeClip,
    start_worker: StartWorker,
) -> None:
    clip = make_clip(width=64, height=64, fps=8, duration_sec=1.0)
    os.link(clip, inbox / "intro.mp4")
    text = "clips:\n" + "".join(f"  - {{video: intro.mp4, name: c{n}}}\n" for n in range(12))
    result = drop(Intake(settings, database), inbox, text)
    assert result.outcome is Outcome.ACCEPTED
    start_worker(settings)
    with database.session() as session:
        imports = [
            j.id for j in session.scalars(select(Job).where(Job.job_type == JobType.GENERATE))
        ]
    for job_id in imports:
        job = wait_for(job_ended(database, job_id), timeout=60, what="the import")
        assert job.job_status == "completed", job.error_message
    project = settings.storage / "trip"
    (stored,) = (project / "refs").iterdir()
    placed = sorted((project / "clips").iterdir())
    assert len(placed) == 12
    assert {p.stat().st_ino for p in placed} == {stored.stat().st_ino}  # one file, 13 names
    assert stored.read_bytes() == clip.read_bytes()
