"""The whole pipeline in one process, as `vidgen run` starts it: a manifest dropped into the
inbox becomes a finished, convention-named video in the outbox (real watchdog events, MariaDB,
ffmpeg; ComfyUI through the double)."""

from __future__ import annotations

import json
import shutil
import subprocess
from collections.abc import Callable, Iterator
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from urllib.parse import quote

import pytest

from status import create_app
from status.context import status_context
from status.events import event_id
from tests.comfyui_double import ComfyUIDouble
from tests.fixtures.comfyui import ComfyUIServer, within
from tests.fixtures.database import make_settings
from tests.fixtures.media import MakeClip, make_image
from tests.fixtures.pipeline import MountTmpfs, wait_for
from vidgen.config import Settings
from vidgen.db.models import Clip, Job
from vidgen.db.session import Database, open_database
from vidgen.ffmpeg import probe
from vidgen.runtime import Part, Services, start

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"

StartVidgen = Callable[[Settings], Services]


@pytest.fixture
def start_vidgen() -> Iterator[StartVidgen]:
    """``start(settings)``: watcher and workers running in this process, stopped at teardown."""
    running: list[Services] = []

    def run(settings: Settings) -> Services:
        services = start(settings, {Part.WATCH, Part.WORK})
        running.append(services)
        return services

    yield run
    for services in running:
        services.stop()


def _drop(inbox: Path, name: str, text: str) -> None:
    """Write like a user's editor: a temporary name, then a rename into place."""
    partial = inbox / f".{name}.part"
    partial.write_text(text, encoding="utf-8")
    partial.rename(inbox / name)


def _outputs(outbox: Path, suffix: str) -> list[Path]:
    return sorted(p for p in outbox.glob(f"*{suffix}") if not p.name.startswith("."))


def _url(database: Database) -> str:
    return database.engine.url.render_as_string(hide_password=False)


@pytest.mark.real_comfyui
def test_a_text_to_video_manifest_reaches_the_outbox(
    comfyui: ComfyUIServer, database: Database, tmp_path: Path, start_vidgen: StartVidgen
) -> None:
    settings = make_settings(tmp_path, _url(database), comfyui={"urls": [comfyui.url]})
    start_vidgen(settings)
    _drop(
        settings.inboxes[0].path,
        "fox.yaml",
        "project: Fox Run\nresolution: 64x64\ndefaults: {steps: 4, frames: 16}\nclips:\n"
        "  - prompt: a red fox running through snow\n"
        "  - prompt: the fox jumps over a log\n"
        "export: {transition: {type: fade, duration: 0.5}, quality: draft}\n",
    )
    exports = wait_for(
        lambda: _outputs(settings.outbox, ".mp4"), within(comfyui, 90), what="the export"
    )
    assert [p.name[8:] for p in exports] == ["_foxRun_export_001.mp4"]
    info = probe(exports[0])
    assert (info.width, info.height, info.codec) == (64, 64, "h264")
    assert abs(info.duration_sec - 3.5) < 0.1  # two 2 s clips, one 0.5 s fade
    assert len(comfyui.runs) == 2
    manifests = list((settings.storage / "foxRun" / "manifests").glob("*_foxRun_manifest_*.yaml"))
    assert manifests
    assert not list(settings.inboxes[0].path.glob("*.yaml"))


def test_redropping_an_unchanged_manifest_regenerates_nothing(
    comfyui: ComfyUIDouble, database: Database, tmp_path: Path, start_vidgen: StartVidgen
) -> None:
    settings = make_settings(tmp_path, _url(database), comfyui={"urls": [comfyui.url]})
    start_vidgen(settings)
    text = "project: Again\nresolution: 64x64\ndefaults: {steps: 2, frames: 8}\nclips:\n"
    text += "  - prompt: one\n  - prompt: two\n"
    _drop(settings.inboxes[0].path, "again.yaml", text)
    wait_for(lambda: _outputs(settings.outbox, ".mp4"), timeout=90, what="the first export")
    _drop(
        settings.inboxes[0].path,
        "again.yaml",
        text.replace("one\n  - prompt: two", "two\n  - prompt: one"),
    )
    wait_for(lambda: len(_outputs(settings.outbox, ".mp4")) == 2, timeout=90, what="the re-join")
    assert len(comfyui.runs) == 2  # reordering re-joined without generating
    with database.session() as session:
        clips = {c.prompt: c.order_index for c in session.query(Clip)}
        assert clips == {"two": 0, "one": 1}


def test_every_no_gpu_example_reaches_the_outbox(
    database: Database, tmp_path: Path, start_vidgen: StartVidgen
) -> None:
    settings = make_settings(tmp_path, _url(database))
    inbox = settings.inboxes[0].path
    _example_media(inbox)
    (inbox / "media" / "broken.mp4").write_bytes(b"not a video at all\n" * 64)
    examples = sorted(EXAMPLES.glob("no-gpu-*.yaml"))
    start_vidgen(settings)
    for example in examples:
        _drop(inbox, example.name, example.read_text(encoding="utf-8"))
    # Two that fail: an imported "video" ffprobe cannot read, and one that is not there.
    _drop(inbox, "broken.yaml", "video: media/broken.mp4\n")
    _drop(inbox, "missing.yaml", "video: media/missing.mp4\n")
    outputs = wait_for(
        lambda: (
            len(list(settings.outbox.iterdir())) == 2 * len(examples)  # each with its NAME.json
            and list(settings.outbox.iterdir())
        ),
        timeout=180,
        what="every example's video",
    )
    suffixes = sorted(p.suffix for p in outputs)
    assert suffixes == [".gif", ".json", ".json", ".json", ".json", ".mp4", ".mp4", ".webm"]

    def statuses() -> set[str]:
        with database.session() as session:
            return {j.job_status for j in session.query(Job)}

    wait_for(lambda: statuses() == {"completed"}, what="every job to be recorded complete")
    rejected = inbox / "rejected"
    wait_for(lambda: len(list(rejected.glob("*.error.txt"))) == 2, what="the two rejections")
    texts = _shown_to_people(settings, database, tmp_path)
    assert "broken.mp4 is not a video ffmpeg can read" in texts["broken.yaml.error.txt"]
    assert "media/missing.mp4: no such file" in texts["missing.yaml.error.txt"]
    project_page = texts["/projects/noGpuFade"]
    assert "Source video" in project_page  # imported clips: no seed, their video is the source
    assert "<dt>Seed</dt>" not in project_page
    settings_shown = [
        json.loads(texts[f"/api/jobs/{job_id}"])["jobSettings"] for job_id in _job_ids(texts)
    ]
    assert {"outbox"} == {s["outbox"] for s in settings_shown if "outbox" in s}
    videos = [s["clip"]["video"] for s in settings_shown if "clip" in s]
    assert videos
    assert all(video.startswith("storage/") for video in videos)


def test_an_export_into_a_full_outbox_waits_in_words_naming_no_server_folder(
    database: Database, tmp_path: Path, start_vidgen: StartVidgen, mount_tmpfs: MountTmpfs
) -> None:
    share, outbox = tmp_path / "nas-inbox", mount_tmpfs(tmp_path / "nas-outbox", "16k")
    share.mkdir()
    inboxes = [
        {"path": str(tmp_path / "inbox"), "stableSeconds": 0.3},
        {"path": str(share), "stableSeconds": 0.3, "outbox": str(outbox)},
    ]
    settings = make_settings(tmp_path, _url(database), inboxes=inboxes, minFreeBytes=0)
    _example_media(share)
    start_vidgen(settings)
    _drop(share, "beach.yaml", "video: media/beach.mp4\n")  # far more than 16 KiB
    waiting = wait_for(
        lambda: [
            j for j in _jobs(database) if j.current_stage.startswith("waiting for disk space")
        ],
        timeout=90,
        what="the export waiting for room",
    )
    assert not list(outbox.iterdir())
    texts = _shown_to_people(settings, database, tmp_path)
    shown = json.loads(texts[f"/api/jobs/{waiting[0].id}"])
    assert shown["jobType"] == "export"
    assert shown["jobStatus"] == "queued"
    assert " MB in nas-outbox, " in shown["currentStage"]
    assert shown["jobSettings"]["outbox"] == "nas-outbox"


def _jobs(database: Database) -> list[Job]:
    with database.session() as session:
        return list(session.query(Job))


def _example_media(inbox: Path) -> None:
    subprocess.run(["python3", str(EXAMPLES / "make_media.py")], check=True)
    shutil.copytree(EXAMPLES / "media", inbox / "media")


def _job_ids(texts: dict[str, str]) -> list[str]:
    return [job["id"] for job in json.loads(texts["/api/jobs?perPage=200"])["jobs"]]


def _shown_to_people(settings: Settings, database: Database, tmp_path: Path) -> dict[str, str]:
    """Every page, every /api answer, every event and every error file in the outboxes and in
    rejected/, by where it came from; fails if any names a folder of this machine (they are
    all under ``tmp_path`` here)."""
    quick = replace(settings, status=replace(settings.status, sse_max_seconds=0.5))
    app = create_app(quick, database, backend_probes=[])
    client = app.test_client()
    urls = ["/", "/projects", "/rejected", "/health", "/api/projects", "/api/jobs?perPage=200"]
    for project in client.get("/api/projects").get_json()["projects"]:
        urls += [f"/projects/{quote(project['projectName'])}"]
        urls += [f"/api/projects/{quote(project['projectName'])}"]
    for job in client.get("/api/jobs?perPage=200").get_json()["jobs"]:
        urls += [f"/jobs/{job['id']}", f"/api/jobs/{job['id']}"]
    texts = {url: client.get(url).get_data(as_text=True) for url in urls}
    since = event_id(datetime.now(UTC) - timedelta(minutes=5))  # every change since then
    events = client.get("/api/events", headers={"Last-Event-ID": since})
    texts["/api/events"] = events.get_data(as_text=True)
    status_context(app).feed.stop()
    for folder in (*settings.all_outboxes, *(i.path / "rejected" for i in settings.inboxes)):
        for path in folder.glob("*.txt"):
            texts[path.name] = path.read_text(encoding="utf-8")
    folders = {str(tmp_path), str(tmp_path.resolve())}
    assert [where for where, text in texts.items() if any(f in text for f in folders)] == []
    assert texts["/api/events"].count("event: ") >= len(_job_ids(texts))
    return texts


@pytest.mark.real_comfyui
def test_an_image_to_video_manifest_uploads_its_reference(
    comfyui: ComfyUIServer, database: Database, tmp_path: Path, start_vidgen: StartVidgen
) -> None:
    settings = make_settings(tmp_path, _url(database), comfyui={"urls": [comfyui.url]})
    inbox = settings.inboxes[0].path
    (inbox / "refs").mkdir()
    make_image(inbox / "refs" / "girl.png")
    start_vidgen(settings)
    _drop(
        inbox,
        "girl.yaml",
        "prompt: a girl smiling\nimage: refs/girl.png\nresolution: 64x64\nframes: 8\nsteps: 2\n",
    )
    outputs = wait_for(
        lambda: _outputs(settings.outbox, ".mp4"), within(comfyui, 90), what="the video"
    )
    info = probe(outputs[0])
    assert (info.width, info.height, info.frame_count) == (64, 64, 8)
    assert comfyui.uploaded("vidgen-*.png")
    assert (inbox / "refs" / "girl.png").exists()  # inputs are copied, never taken away


def test_the_imported_clip_alone_is_delivered_as_it_is(
    make_clip: MakeClip, database: Database, tmp_path: Path, start_vidgen: StartVidgen
) -> None:
    settings = make_settings(tmp_path, _url(database))
    inbox = settings.inboxes[0].path
    shutil.copy(make_clip(320, 240, 10, 1.0), inbox / "holiday.mp4")
    start_vidgen(settings)
    _drop(inbox, "holiday.yaml", "video: holiday.mp4\n")
    outputs = wait_for(lambda: _outputs(settings.outbox, ".mp4"), timeout=60, what="the video")
    info = probe(outputs[0])
    assert (info.width, info.height, info.frame_count, info.fps) == (320, 240, 10, 10.0)


_GPU_EXPORT = (
    "project: Twice\nresolution: 64x64\ndefaults: {steps: 2, frames: 8}\nclips:\n"
    "  - {prompt: one, seed: 1}\n  - {prompt: two, seed: 2}\n"
    "export:\n  upscale: {scale: 2, engine: comfyui}\n  interpolate: {fps: 24, engine: comfyui}\n"
    "  quality: draft\n"
)


def _settings_on(backend: str, database: Database, tmp_path: Path, url: str) -> Settings:
    database_url = _url(database) if backend == "mariadb" else f"sqlite:///{tmp_path / 'v.db'}"
    # Chunks of 6 frames: the 16 joined frames go to Real-ESRGAN in three prompts.
    comfy = {"urls": [url], "upscaleChunkFrames": 6}
    return make_settings(tmp_path, database_url, comfyui=comfy)


def _stored_manifests(settings: Settings, project: str) -> list[Path]:
    return sorted((settings.storage / project / "manifests").glob(f"*_{project}_manifest_*.yaml"))


def _job_count(settings: Settings) -> int:
    database = open_database(settings.database_url)
    try:
        with database.session() as session:
            return session.query(Job).count()
    finally:
        database.dispose()


@pytest.mark.parametrize("backend", ["mariadb", "sqlite"])
def test_an_unchanged_manifest_dropped_again_after_its_export_queues_and_writes_nothing(
    backend: str,
    comfyui: ComfyUIDouble,
    database: Database,
    tmp_path: Path,
    start_vidgen: StartVidgen,
) -> None:
    settings = _settings_on(backend, database, tmp_path, comfyui.url)
    inbox = settings.inboxes[0].path
    start_vidgen(settings)
    _drop(inbox, "twice.yaml", _GPU_EXPORT)
    wait_for(lambda: _outputs(settings.outbox, ".mp4"), timeout=120, what="the export")
    # Two clips, three Real-ESRGAN chunks and RIFE.
    assert len(comfyui.prompts_received) == 6
    jobs_before = _job_count(settings)
    _drop(inbox, "twice.yaml", _GPU_EXPORT)
    wait_for(lambda: len(_stored_manifests(settings, "twice")) == 2, what="the second drop")
    assert _job_count(settings) == jobs_before
    assert len(comfyui.prompts_received) == 6
    assert [p.name[8:] for p in _outputs(settings.outbox, ".mp4")] == ["_twice_export_001.mp4"]


def test_changing_only_the_export_queues_one_export_and_no_clip(
    comfyui: ComfyUIDouble, database: Database, tmp_path: Path, start_vidgen: StartVidgen
) -> None:
    settings = _settings_on("mariadb", database, tmp_path, comfyui.url)
    inbox = settings.inboxes[0].path
    start_vidgen(settings)
    _drop(inbox, "twice.yaml", _GPU_EXPORT)
    wait_for(lambda: _outputs(settings.outbox, ".mp4"), timeout=120, what="the export")
    jobs_before = _job_count(settings)
    _drop(inbox, "twice.yaml", _GPU_EXPORT.replace("quality: draft", "quality: high"))
    exports = wait_for(
        lambda: len(_outputs(settings.outbox, ".mp4")) == 2 and _outputs(settings.outbox, ".mp4"),
        timeout=120,
        what="the second export",
    )
    assert [p.name[8:] for p in exports] == ["_twice_export_001.mp4", "_twice_export_002.mp4"]
    assert _job_count(settings) == jobs_before + 1
    samplers = [p for p in comfyui.prompts_received if '"KSampler"' in json.dumps(p.prompt)]
    assert len(samplers) == 2  # the clips were not generated again
