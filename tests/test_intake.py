"""Intake against the real MariaDB and real files: claim, reject, record by the build-system
rule, references copied into storage, cancelling, waiting for files, and a SIGKILL at every step
followed by ``recover()``."""

from __future__ import annotations

import math
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import HealthCheck, given
from hypothesis import settings as hypothesis_settings
from hypothesis import strategies as st
from sqlalchemy import func, select

from tests.fixtures.database import make_settings
from tests.fixtures.inbox import drop, old_file, process_until_settled
from tests.fixtures.media import MakeClip, png_bytes
from vidgen.config import Settings
from vidgen.db.models import Clip, ClipStatus, Job, JobStatus, JobType, Manifest, Project, RunsOn
from vidgen.db.session import Database
from vidgen.specs import ExportRequest, ExportSpec
from watcher.intake import ACCEPT_STEPS, REJECT_STEPS, Intake, Outcome

PNG = png_bytes()
REPO = Path(__file__).resolve().parents[1]
TWO_CLIPS = "project: Summer Trip\nclips:\n  - prompt: waves\n  - prompt: a girl\n"


def url_of(database: Database) -> str:
    return database.engine.url.render_as_string(hide_password=False)


@pytest.fixture
def intake(settings: Settings, database: Database) -> Intake:
    return Intake(settings, database)


@pytest.fixture
def inbox(settings: Settings) -> Path:
    return settings.inboxes[0].path


def jobs(database: Database, job_type: JobType | None = None) -> list[Job]:
    with database.session() as session:
        query = select(Job).order_by(Job.created_at, Job.id)
        if job_type is not None:
            query = query.where(Job.job_type == job_type)
        return list(session.scalars(query))


def clips(database: Database, *, active: bool = True) -> list[Clip]:
    with database.session() as session:
        query = select(Clip).order_by(Clip.order_index, Clip.created_at)
        if active:
            query = query.where(Clip.clip_status != ClipStatus.REMOVED)
        return list(session.scalars(query))


def count(database: Database, model: type[object]) -> int:
    with database.session() as session:
        return int(session.scalar(select(func.count()).select_from(model)) or 0)


def test_accepted_manifest_is_recorded_and_stored(
    intake: Intake, inbox: Path, database: Database, settings: Settings
) -> None:
    result = drop(intake, inbox, TWO_CLIPS)
    assert result.outcome is Outcome.ACCEPTED
    assert result.project_name == "summerTrip"
    assert not (inbox / "trip.yaml").exists()
    assert list((inbox / ".vidgen" / "processing").iterdir()) == []
    assert result.stored_path is not None
    assert result.stored_path.parent == settings.storage / "summerTrip" / "manifests"
    assert result.stored_path.name.endswith("_summerTrip_manifest_001.yaml")
    assert result.stored_path.read_text() == TWO_CLIPS
    resolved = result.stored_path.with_name(result.stored_path.stem + ".resolved.json")
    assert '"projectName": "summerTrip"' in resolved.read_text()
    generate = jobs(database, JobType.GENERATE)
    (export,) = jobs(database, JobType.EXPORT)
    assert [j.runs_on for j in generate] == [RunsOn.COMFYUI, RunsOn.COMFYUI]
    recorded = clips(database)
    assert [c.order_index for c in recorded] == [0, 1]
    assert export.input_clip_ids == [c.id for c in recorded]
    assert sorted(export.depends_on) == sorted(j.id for j in generate)
    assert export.runs_on == RunsOn.CPU
    assert ExportRequest.from_json(export.job_settings) == ExportRequest(
        ExportSpec(), str(settings.outbox), 512, 512, 8
    )
    spec = generate[0].job_settings["clip"]
    assert spec["seed"] == recorded[0].seed_value
    assert spec["checkpoint"].endswith(".safetensors")
    with database.session() as session:
        row = session.scalars(select(Manifest)).one()
        assert row.id == result.manifest_id
        assert row.status == "accepted"
        assert row.stored_path == str(result.stored_path)
        assert row.resolved_manifest is not None
        assert row.resolved_manifest["clips"][1]["seed"] == recorded[1].seed_value


def test_rejected_manifest_gets_an_error_file_and_a_free_name(
    intake: Intake, inbox: Path, database: Database
) -> None:
    text = "prompt: a fox\nframes: 3\nstepz: 20\n"
    first = drop(intake, inbox, text)
    second = drop(intake, inbox, text)
    assert first.outcome is second.outcome is Outcome.REJECTED
    rejected = inbox / "rejected"
    assert sorted(p.name for p in rejected.iterdir()) == [
        "trip-2.yaml",
        "trip-2.yaml.error.txt",
        "trip.yaml",
        "trip.yaml.error.txt",
    ]
    assert (rejected / "trip.yaml").read_text() == text
    assert (rejected / "trip.yaml.error.txt").read_text().splitlines() == [
        "trip.yaml:2: frames: must be at least 8, got 3",
        "trip.yaml:3: stepz: unknown key 'stepz' (did you mean 'steps'?)",
    ]
    assert count(database, Project) == count(database, Job) == count(database, Manifest) == 0


def test_same_file_twice_is_one_project_and_nothing_to_do(
    intake: Intake, inbox: Path, database: Database, caplog: pytest.LogCaptureFixture
) -> None:
    first = drop(intake, inbox, TWO_CLIPS)
    seeds = [c.seed_value for c in clips(database)]
    with caplog.at_level("INFO", logger="watcher.intake"):
        second = drop(intake, inbox, TWO_CLIPS)
    assert (first.outcome, second.outcome) == (Outcome.ACCEPTED, Outcome.UNCHANGED)
    assert count(database, Project) == 1
    assert count(database, Manifest) == 2
    assert len(jobs(database)) == 3
    assert [c.seed_value for c in clips(database)] == seeds
    assert "nothing changed in project summerTrip; recorded, nothing queued" in caplog.text
    assert second.stored_path is not None
    assert second.stored_path.name.endswith("_002.yaml")


def test_reorder_only_joins_again(intake: Intake, inbox: Path, database: Database) -> None:
    drop(intake, inbox, TWO_CLIPS)
    before = {c.prompt: c.id for c in clips(database)}
    result = drop(
        intake,
        inbox,
        TWO_CLIPS.replace("waves", "X").replace("a girl", "waves").replace("X", "a girl"),
    )
    assert result.outcome is Outcome.ACCEPTED
    after = clips(database)
    assert [(c.prompt, c.order_index) for c in after] == [("a girl", 0), ("waves", 1)]
    assert {c.prompt: c.id for c in after} == before
    assert len(jobs(database, JobType.GENERATE)) == 2
    export = jobs(database, JobType.EXPORT)[-1]
    assert export.input_clip_ids == [before["a girl"], before["waves"]]


def test_changed_clip_regenerates_alone_and_left_out_is_removed(
    intake: Intake, inbox: Path, database: Database
) -> None:
    drop(intake, inbox, "clips:\n  - prompt: a\n  - prompt: b\n  - prompt: c\n")
    drop(intake, inbox, "clips:\n  - prompt: a\n  - prompt: B\n")
    generate = jobs(database, JobType.GENERATE)
    assert len(generate) == 4
    assert generate[-1].job_settings["clip"]["prompt"] == "B"
    assert [(c.prompt, c.order_index) for c in clips(database)] == [("a", 0), ("B", 1)]
    removed = {c.prompt for c in clips(database, active=False) if c.clip_status == "removed"}
    assert removed == {"b", "c"}


def test_failed_clip_is_tried_again_and_regenerate_draws_a_new_seed(
    intake: Intake, inbox: Path, database: Database
) -> None:
    drop(intake, inbox, "clips:\n  - prompt: a\n  - prompt: b\n    seed: 7\n")
    with database.session() as session:
        failed = session.scalars(select(Clip).where(Clip.prompt == "a")).one()
        failed.clip_status = ClipStatus.FAILED
        failed_id, first_seed = failed.id, failed.seed_value
    drop(intake, inbox, "clips:\n  - prompt: a\n  - prompt: b\n    seed: 7\n")
    retried = jobs(database, JobType.GENERATE)[-1]
    assert retried.input_clip_ids == [failed_id]
    assert retried.job_settings["clip"]["seed"] == first_seed
    drop(intake, inbox, "clips:\n  - prompt: a\n    regenerate: true\n  - prompt: b\n    seed: 7\n")
    fresh = clips(database)[0]
    assert fresh.id != failed_id
    assert fresh.prompt == "a"
    assert len(jobs(database, JobType.GENERATE)) == 4
    assert clips(database)[1].seed_value == 7


def test_references_are_copied_once_and_their_bytes_count(
    intake: Intake, inbox: Path, database: Database, settings: Settings
) -> None:
    old_file(inbox / "refs" / "girl.png", PNG)
    text = (
        "clips:\n"
        "  - {prompt: a girl, image: refs/girl.png}\n"
        "  - {prompt: again, image: refs/girl.png}\n"
    )
    drop(intake, inbox, text)
    refs = settings.storage / "trip" / "refs"
    (stored,) = refs.iterdir()
    assert stored.name.endswith("_trip_ref_001.png")
    assert stored.read_bytes() == PNG
    for job in jobs(database, JobType.GENERATE):
        assert job.job_settings["clip"]["reference_image"] == str(stored)
    assert drop(intake, inbox, text).outcome is Outcome.UNCHANGED
    old_file(inbox / "refs" / "girl.png", PNG + b"changed")
    assert drop(intake, inbox, text).outcome is Outcome.ACCEPTED
    assert len(list(refs.iterdir())) == 2
    assert len(jobs(database, JobType.GENERATE)) == 4


def test_imported_video_runs_on_cpu_and_comfyui_export_on_comfyui(
    intake: Intake, inbox: Path, database: Database, make_clip: MakeClip, settings: Settings
) -> None:
    old_file(
        inbox / "intro.mp4", make_clip(width=64, height=64, fps=8, duration_sec=1.0).read_bytes()
    )
    text = (
        "clips:\n  - video: intro.mp4\n  - prompt: a\n"
        "export:\n  upscale: {scale: 2, engine: comfyui}\n"
    )
    assert drop(intake, inbox, text).outcome is Outcome.ACCEPTED
    imported, generated = jobs(database, JobType.GENERATE)
    assert (imported.runs_on, generated.runs_on) == (RunsOn.CPU, RunsOn.COMFYUI)
    assert imported.job_settings["clip"]["video"].startswith(
        str(settings.storage / "trip" / "refs")
    )
    assert jobs(database, JobType.EXPORT)[0].runs_on == RunsOn.COMFYUI


def test_cancel_manifest_stops_the_project(intake: Intake, inbox: Path, database: Database) -> None:
    drop(intake, inbox, TWO_CLIPS)
    result = drop(intake, inbox, "cancel: summerTrip\n", name="stop.yaml")
    assert result.outcome is Outcome.CANCELLED
    assert {j.job_status for j in jobs(database)} == {JobStatus.CANCELLED}
    unknown = drop(intake, inbox, "\ncancel: winterTrip\n", name="stop.yaml")
    assert unknown.outcome is Outcome.REJECTED
    assert unknown.message == "stop.yaml:2: cancel: no project or job named 'winterTrip'"


@pytest.mark.parametrize(
    ("display", "folder"), [("내 프로젝트", "내프로젝트"), ("🎬 Movie Night 🍿", "movieNight")]
)
def test_korean_and_emoji_project_names(
    intake: Intake, inbox: Path, settings: Settings, display: str, folder: str
) -> None:
    result = drop(intake, inbox, f"project: {display}\nprompt: 바다\n", name="여행.yaml")
    assert result.project_name == folder
    assert result.stored_path is not None
    assert result.stored_path.parent == settings.storage / folder / "manifests"
    assert result.stored_path.name.endswith(f"_{folder}_manifest_001.yaml")


def test_manifest_waits_for_its_image_within_the_grace(
    intake: Intake, inbox: Path, database: Database
) -> None:
    path = inbox / "trip.yaml"
    path.write_text("prompt: a girl\nimage: refs/girl.png\n")
    assert intake.process(path).outcome is Outcome.WAITING
    assert path.exists()
    (inbox / "refs").mkdir()
    (inbox / "refs" / "girl.png").write_bytes(PNG)  # fresh: taken once it has settled
    assert process_until_settled(intake, path).outcome is Outcome.ACCEPTED
    assert count(database, Manifest) == 1


def test_manifest_is_rejected_when_the_grace_runs_out(
    intake: Intake, inbox: Path, settings: Settings
) -> None:
    path = inbox / "trip.yaml"
    path.write_text("prompt: a girl\nimage: refs/girl.png\n")
    started = time.monotonic()
    result = process_until_settled(intake, path)
    assert result.outcome is Outcome.REJECTED
    assert time.monotonic() - started >= settings.intake.missing_files_grace_seconds
    assert result.message == "trip.yaml:2: image: refs/girl.png: no such file in the inbox folder"


def test_sqlite_default(sqlite_database: Database, tmp_path: Path) -> None:
    settings = make_settings(tmp_path, url_of(sqlite_database))
    intake = Intake(settings, sqlite_database)
    inbox = settings.inboxes[0].path
    assert (
        drop(intake, inbox, "prompt: fox\nseed: 18446744073709551615\n").outcome is Outcome.ACCEPTED
    )
    assert (
        drop(intake, inbox, "prompt: fox\nseed: 18446744073709551615\n").outcome
        is Outcome.UNCHANGED
    )
    assert clips(sqlite_database)[0].seed_value == 2**64 - 1


# A SIGKILL after every step of intake, then recover(): the file ends recorded and moved (or
# rejected), exactly once.

_CHILD = """
import os, signal, sys
from pathlib import Path
from tests.fixtures.database import make_settings
from tests.fixtures.inbox import drop, old_file, process_until_settled
from vidgen.db.session import open_database
from watcher.intake import Intake

root, url, manifest, step = sys.argv[1:5]
settings = make_settings(Path(root), url)

def crash(name):
    if name == step:
        os.kill(os.getpid(), signal.SIGKILL)

Intake(settings, open_database(url), on_step=crash).process(Path(manifest))
"""


def run_until_killed(root: Path, url: str, manifest: Path, step: str) -> None:
    child = subprocess.run(
        [sys.executable, "-c", _CHILD, str(root), url, str(manifest), step],
        cwd=REPO,
        capture_output=True,
        timeout=120,
        check=False,
    )
    assert child.returncode == -9, child.stderr.decode()


@pytest.mark.parametrize("step", ACCEPT_STEPS)
def test_crash_at_every_step_of_an_accepted_manifest(
    step: str, tmp_path: Path, database: Database, settings: Settings, inbox: Path
) -> None:
    old_file(inbox / "refs" / "girl.png", PNG)
    text = "project: Crash\nclips:\n  - prompt: a\n  - {prompt: b, image: refs/girl.png}\n"
    (inbox / "crash.yaml").write_text(text)
    run_until_killed(tmp_path, url_of(database), inbox / "crash.yaml", step)
    results = Intake(settings, database).recover()
    assert [r.outcome for r in results] == ([] if step == "stored" else [Outcome.ACCEPTED])
    assert not (inbox / "crash.yaml").exists()
    assert list((inbox / ".vidgen" / "processing").iterdir()) == []
    assert count(database, Manifest) == 1
    assert count(database, Project) == 1
    assert len(jobs(database)) == 3
    (stored,) = (settings.storage / "crash" / "manifests").glob("*.yaml")
    assert stored.read_text() == text
    assert stored.with_name(stored.stem + ".resolved.json").is_file()
    assert len(list((settings.storage / "crash" / "refs").iterdir())) == 1
    again = drop(Intake(settings, database), inbox, text, name="crash.yaml")
    assert again.outcome is Outcome.UNCHANGED


@pytest.mark.parametrize("step", REJECT_STEPS)
def test_crash_at_every_step_of_a_rejected_manifest(
    step: str, tmp_path: Path, database: Database, settings: Settings, inbox: Path
) -> None:
    (inbox / "bad.yaml").write_text("prompt: a\nframes: 3\n")
    run_until_killed(tmp_path, url_of(database), inbox / "bad.yaml", step)
    Intake(settings, database).recover()
    assert not (inbox / "bad.yaml").exists()
    assert list((inbox / ".vidgen" / "processing").iterdir()) == []
    assert sorted(p.name for p in (inbox / "rejected").iterdir()) == [
        "bad.yaml",
        "bad.yaml.error.txt",
    ]
    assert count(database, Manifest) == 0


# Property-based: generated and mutated manifests, each accepted or rejected with an error file;
# intake never raises and nothing is written outside the test's folders.

_GOOD: dict[str, object] = {
    "project": "Prop Test",
    "clips": [{"prompt": "a"}, {"prompt": "b", "image": "refs/girl.png"}],
    "export": {"transition": {"type": "fade", "duration": 0.5}, "format": "gif"},
}
_ODD_VALUES = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-5, 300),
    st.floats(-1, 40, allow_nan=False),
    st.sampled_from([math.nan, math.inf, -math.inf, 42.0]),  # poison pills: all rejected
    st.sampled_from(
        [
            "",
            " ",
            "random",
            "../girl.png",
            "/etc/passwd",
            "refs/girl.png",
            "fade",
            "내 프로젝트",
            "🎬",
            "512x512",
            "520x512",
            "missing.png",
            "wipe",
        ]
    ),
)
_KEYS = st.sampled_from(
    [
        "project",
        "prompt",
        "image",
        "video",
        "seed",
        "frames",
        "steps",
        "cfg",
        "resolution",
        "transition",
        "duration",
        "type",
        "scale",
        "regenerate",
        "promt",
        "cancel",
        "name",
        "format",
        "upscale",
        "clips",
    ]
)


def _mappings(document: dict[str, Any]) -> list[dict[str, Any]]:
    """Every mapping inside ``document`` (itself included), for a mutation to pick from."""
    found = [document]
    for value in document.values():
        items = value if isinstance(value, list) else [value]
        found += [m for item in items if isinstance(item, dict) for m in _mappings(item)]
    return found


@st.composite
def mutated_manifests(draw: st.DrawFn) -> dict[str, Any]:
    document: dict[str, Any] = yaml.safe_load(yaml.safe_dump(_GOOD))
    for _ in range(draw(st.integers(0, 3))):
        target = draw(st.sampled_from(_mappings(document)))
        if draw(st.booleans()) and target:
            target.pop(draw(st.sampled_from(sorted(target))), None)
        else:
            target[draw(_KEYS)] = draw(_ODD_VALUES)
    return document


@pytest.fixture
def graceless(tmp_path: Path, database: Database) -> Iterator[tuple[Intake, Path, Path]]:
    settings = make_settings(tmp_path, url_of(database), intake={"missingFilesGraceSeconds": 0})
    inbox = settings.inboxes[0].path
    old_file(inbox / "refs" / "girl.png", PNG)
    return Intake(settings, database), inbox, tmp_path


@hypothesis_settings(
    max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(document=mutated_manifests(), name=st.sampled_from(["m.yaml", "여행.yml", "a b.yaml"]))
def test_mutated_manifests_are_accepted_or_rejected(
    graceless: tuple[Intake, Path, Path], document: dict[str, Any], name: str
) -> None:
    intake, inbox, root = graceless
    (inbox / name).write_text(yaml.safe_dump(document, allow_unicode=True), encoding="utf-8")
    result = intake.process(inbox / name)
    assert result.outcome in (Outcome.ACCEPTED, Outcome.UNCHANGED, Outcome.REJECTED)
    assert not (inbox / name).exists()
    assert list((inbox / ".vidgen" / "processing").iterdir()) == []
    if result.outcome is Outcome.REJECTED:
        error_files = sorted((inbox / "rejected").glob("*.error.txt"))
        assert error_files
        assert all(line.split(":", 1)[0] == name for line in result.message.splitlines())
    else:
        assert result.stored_path is not None
        assert result.stored_path.is_relative_to(root / "storage")
    for top in root.iterdir():
        assert top.name in ("inbox", "outbox", "storage"), top


# Property-based: referenced media files mutated (truncated, bit-flipped, wrong magic, huge
# declared dimensions), each manifest accepted or rejected with an error file; never an
# exception, never a file left claimed or half copied.


@pytest.fixture(scope="module")
def media_bases(make_clip: MakeClip, tmp_path_factory: pytest.TempPathFactory) -> dict[str, bytes]:
    jpeg = tmp_path_factory.mktemp("jpeg") / "base.jpg"
    quiet = ["-hide_banner", "-loglevel", "error", "-nostdin", "-y"]
    source = ["-f", "lavfi", "-i", "testsrc2=size=48x32", "-frames:v", "1"]
    subprocess.run(["ffmpeg", *quiet, *source, f"file:{jpeg}"], check=True)
    mp4 = make_clip(width=64, height=64, fps=8, duration_sec=1.0)
    return {"png": png_bytes(16, 16), "jpg": jpeg.read_bytes(), "mp4": mp4.read_bytes()}


_MUTATIONS = st.tuples(
    st.sampled_from(["png", "jpg", "mp4"]),
    st.sampled_from(["truncate", "flip", "magic", "dimensions"]),
    st.lists(st.integers(0, 2**31), min_size=1, max_size=8),
)


def mutated(data: bytes, mutation: str, numbers: list[int]) -> bytes:
    body = bytearray(data)
    if mutation == "truncate":
        return bytes(body[: numbers[0] % len(body)])
    if mutation == "flip":
        for number in numbers:
            body[number % len(body)] ^= 1 << (number % 8)
    elif mutation == "magic":
        body[0:4] = numbers[0].to_bytes(4, "big")
    else:
        huge = (numbers[0] % 60000 + 5000).to_bytes(4, "big")
        for marker, offset, width in ((b"IHDR", 4, 4), (b"\xff\xc0", 5, 2), (b"avc1", 28, 2)):
            at = body.find(marker)
            if at >= 0:  # the header's width and height fields
                start = at + offset
                body[start : start + 2 * width] = huge[-width:] * 2
    return bytes(body)


@hypothesis_settings(
    max_examples=120, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(mutation=_MUTATIONS)
def test_mutated_media_files_are_accepted_or_rejected(
    graceless: tuple[Intake, Path, Path],
    media_bases: dict[str, bytes],
    mutation: tuple[str, str, list[int]],
) -> None:
    intake, inbox, root = graceless
    kind, how, numbers = mutation
    old_file(inbox / "media" / f"file.{kind}", mutated(media_bases[kind], how, numbers))
    key = "video" if kind == "mp4" else "image"
    text = (
        f"video: media/file.{kind}\n"
        if key == "video"
        else f"prompt: a\nimage: media/file.{kind}\n"
    )
    (inbox / "m.yaml").write_text(text)
    result = intake.process(inbox / "m.yaml")
    assert result.outcome in (Outcome.ACCEPTED, Outcome.UNCHANGED, Outcome.REJECTED)
    assert not (inbox / "m.yaml").exists()
    assert list((inbox / ".vidgen" / "processing").iterdir()) == []
    assert list((root / "storage").glob(".intake/*")) == []
    if result.outcome is Outcome.REJECTED:
        assert result.message.startswith(f"m.yaml:{1 if key == 'video' else 2}: {key}: media/file.")
        newest = max((inbox / "rejected").glob("*.error.txt"), key=lambda p: p.stat().st_mtime_ns)
        assert newest.read_text() == result.message + "\n"
