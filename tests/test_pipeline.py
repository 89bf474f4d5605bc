"""The whole pipeline in one process, as `vidgen run` starts it: a manifest dropped into the
inbox becomes a finished, convention-named video in the outbox (real watchdog events, MariaDB,
ffmpeg; ComfyUI through the double)."""

from __future__ import annotations

import json
import shutil
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from status import create_app
from tests.comfyui_double import ComfyUIDouble
from tests.fixtures.database import make_settings
from tests.fixtures.media import MakeClip, make_image
from tests.fixtures.pipeline import wait_for
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


def test_a_text_to_video_manifest_reaches_the_outbox(
    comfyui: ComfyUIDouble, database: Database, tmp_path: Path, start_vidgen: StartVidgen
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
    exports = wait_for(lambda: _outputs(settings.outbox, ".mp4"), timeout=90, what="the export")
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
    subprocess.run(["python3", str(EXAMPLES / "make_media.py")], check=True)
    settings = make_settings(tmp_path, _url(database))
    inbox = settings.inboxes[0].path
    shutil.copytree(EXAMPLES / "media", inbox / "media")
    examples = sorted(EXAMPLES.glob("no-gpu-*.yaml"))
    start_vidgen(settings)
    for example in examples:
        _drop(inbox, example.name, example.read_text(encoding="utf-8"))
    outputs = wait_for(
        lambda: (
            len(list(settings.outbox.iterdir())) == len(examples)
            and list(settings.outbox.iterdir())
        ),
        timeout=180,
        what="every example's video",
    )
    suffixes = sorted(p.suffix for p in outputs)
    assert suffixes == [".gif", ".mp4", ".mp4", ".webm"]

    def statuses() -> set[str]:
        with database.session() as session:
            return {j.job_status for j in session.query(Job)}

    wait_for(lambda: statuses() == {"completed"}, what="every job to be recorded complete")
    client = create_app(settings, database).test_client()
    for page in ("/api/projects/noGpuFade", "/projects/noGpuFade", "/api/jobs"):
        body = client.get(page).get_data(as_text=True)
        assert str(tmp_path) not in body  # no folder of this machine reaches a browser
    project_page = client.get("/projects/noGpuFade").get_data(as_text=True)
    assert "Source video" in project_page  # imported clips: no seed, their video is the source
    assert "<dt>Seed</dt>" not in project_page


def test_an_image_to_video_manifest_uploads_its_reference(
    comfyui: ComfyUIDouble, database: Database, tmp_path: Path, start_vidgen: StartVidgen
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
    outputs = wait_for(lambda: _outputs(settings.outbox, ".mp4"), timeout=90, what="the video")
    info = probe(outputs[0])
    assert (info.width, info.height, info.frame_count) == (64, 64, 8)
    assert list(comfyui.input_dir.glob("vidgen-*.png"))
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
