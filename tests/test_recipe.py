"""Every output carries its recipe: in its metadata (MP4 and WebM tags, a GIF comment) and in a
sidecar NAME.json; `vidgen manifest` prints, from the video alone, a manifest that makes the
project again, and a re-drop of it into a fresh install sends the same ComfyUI graphs."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest
import yaml

from tests.comfyui_double import ComfyUIDouble
from tests.fixtures.database import make_settings
from tests.fixtures.media import MakeClip, make_image
from tests.fixtures.pipeline import (
    StartWorker,
    graphs_sent,
    job_ended,
    queue_export,
    ready_clips,
    wait_for,
)
from vidgen.config import Settings
from vidgen.db.models import Project
from vidgen.db.session import Database, open_database
from vidgen.ffmpeg import format_tags, probe
from vidgen.runtime import Services
from vidgen.specs import ExportSpec, OutputFormat

VIDGEN = str(Path(sys.executable).with_name("vidgen"))
# Everything that could fool a command line, an ffmetadata file or YAML, in one prompt.
TRICKY = 'a "fox" = ; # \\ -i /etc/passwd $(echo no) `x` --y\nnew line, ünïcødé 漢字 🦊'


def _vidgen_manifest(video: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [VIDGEN, "manifest", str(video)], capture_output=True, text=True, timeout=60
    )


@pytest.mark.parametrize("fmt", list(OutputFormat))
def test_each_format_carries_its_recipe_and_a_sidecar(
    fmt: OutputFormat,
    settings: Settings,
    database: Database,
    clips: list[Path],
    start_worker: StartWorker,
) -> None:
    ids = ready_clips(database, clips[:2])
    with database.session() as session:
        session.query(Project).update({"description": TRICKY})  # into each format's metadata
    job_id = queue_export(database, ids, ExportSpec(format=fmt), settings.outbox)
    start_worker(settings)
    ended = wait_for(job_ended(database, job_id), timeout=120, what="the export")
    assert ended.job_status == "completed", ended.error_message
    video = Path(ended.output_path)
    sidecar = json.loads(video.with_suffix(".json").read_text(encoding="utf-8"))
    assert sidecar["video"] == video.name
    assert sidecar["vidgen"] == "0.1.0"
    assert [c["name"] for c in sidecar["clips"]] == ["clip1", "clip2"]
    assert ended.job_outputs["recipe"] == str(video.with_suffix(".json"))
    assert probe(video).frame_count > 0  # still a video every player reads
    if fmt is OutputFormat.MP4_H265:
        streams = subprocess.run(
            ["ffprobe", "-v", "error", "-show_entries", "stream=codec_tag_string", "-of", "csv=p=0",
             f"file:{video}"],
            capture_output=True, text=True, check=True,
        )  # fmt: skip
        assert streams.stdout.strip() == "hvc1"  # Apple players still play it
    video.with_suffix(".json").rename(video.with_suffix(".kept"))  # the video alone
    tags = format_tags(video)
    assert "vidgen_recipe" in tags or "comment" in tags
    printed = _vidgen_manifest(video)
    assert printed.returncode == 0, printed.stderr
    manifest = yaml.safe_load(printed.stdout)
    assert manifest == sidecar["manifest"]
    assert manifest["description"] == TRICKY
    assert manifest["export"]["format"] == fmt.value
    assert [c["video"] for c in manifest["clips"]] == ["clip_0.mp4", "clip_1.mp4"]


def test_a_gif_too_large_for_its_comment_says_so_and_the_sidecar_has_it(
    settings: Settings, database: Database, clips: list[Path], start_worker: StartWorker
) -> None:
    ids = ready_clips(database, clips[:1])
    with database.session() as session:
        # 60 kB in the database; as the GIF comment's ASCII JSON (ó is \\u00f3) over 64 KiB
        session.query(Project).update({"description": "lóng " * 10_000})
    job_id = queue_export(database, ids, ExportSpec(format=OutputFormat.GIF), settings.outbox)
    start_worker(settings)
    ended = wait_for(job_ended(database, job_id), timeout=120, what="the export")
    video = Path(ended.output_path)
    sidecar = json.loads(video.with_suffix(".json").read_text(encoding="utf-8"))
    assert sidecar["embedded"].startswith("not in the GIF")
    assert "comment" not in format_tags(video)
    printed = _vidgen_manifest(video)
    assert printed.returncode == 0, printed.stderr
    assert yaml.safe_load(printed.stdout)["description"].startswith("lóng lóng")
    video.with_suffix(".json").unlink()
    alone = _vidgen_manifest(video)
    assert alone.returncode == 1
    assert "carries no vidgen recipe" in alone.stderr


def test_vidgen_manifest_of_a_video_not_made_by_vidgen_says_so(make_clip: MakeClip) -> None:
    done = _vidgen_manifest(make_clip(64, 64, 8, 1.0))
    assert done.returncode == 1
    assert done.stderr.startswith("vidgen: ")
    assert "carries no vidgen recipe" in done.stderr


MANIFEST = f"""project: Recipe Trip
resolution: 64x64
clips:
  - prompt: {json.dumps(TRICKY, ensure_ascii=False)}
    frames: 8
    steps: 2
  - prompts: {{0: "a face {{{{calm}}}}", 4: a face smiling}}
    image: refs/face.png
    motionLora: {{name: v2_lora_ZoomIn, strength: 0.7}}
    frames: 8
    steps: 2
    ipAdapterWeight: 0.6
export:
  transition: {{type: fade, duration: 0.25}}
  upscale: {{scale: 2, engine: comfyui, model: RealESRGAN_x4plus}}
  interpolate: {{fps: 16, engine: ffmpeg}}
  format: webm
"""


@pytest.mark.slow
def test_the_printed_manifest_makes_the_same_graphs_in_a_fresh_install(
    comfyui: ComfyUIDouble,
    database: Database,
    tmp_path: Path,
    running: Callable[[Settings], Services],
) -> None:
    first = make_settings(
        tmp_path / "first",
        database.engine.url.render_as_string(hide_password=False),
        comfyui={"urls": [comfyui.url]},
    )
    video = _export(first, running, "trip.yaml", MANIFEST)
    shutil.move(video.with_suffix(".json"), tmp_path / "sidecar.json")  # from the video alone
    printed = _vidgen_manifest(video)
    assert printed.returncode == 0, printed.stderr
    manifest = yaml.safe_load(printed.stdout)
    assert manifest["clips"][0]["prompt"] == TRICKY
    assert manifest["clips"][1]["image"] == "refs/face.png"
    # The recipe is JSON: frame numbers come back as text, which a manifest may write too.
    assert manifest["clips"][1]["prompts"] == {"0": "a face {{calm}}", "4": "a face smiling"}
    assert manifest["clips"][1]["motionLora"] == [{"name": "v2_lora_ZoomIn.ckpt", "strength": 0.7}]
    assert all(isinstance(clip["seed"], int) for clip in manifest["clips"])  # drawn, now fixed

    fresh_root = tmp_path / "fresh"
    fresh = make_settings(
        fresh_root, f"sqlite:///{fresh_root / 'vidgen.db'}", comfyui={"urls": [comfyui.url]}
    )
    _export(fresh, running, "again.yaml", printed.stdout)
    fresh_database = open_database(fresh.database_url)
    try:
        assert graphs_sent(fresh_database) == graphs_sent(database)
    finally:
        fresh_database.dispose()
    sent = sorted(graphs_sent(database))
    assert sent[:2] == ["clip1", "clip2"]  # both clips, then Real-ESRGAN's chunks
    assert sent[2:]
    assert all(key.startswith("export: upscale_") for key in sent[2:])


def _export(
    settings: Settings, running: Callable[[Settings], Services], name: str, text: str
) -> Path:
    inbox = settings.inboxes[0].path
    (inbox / "refs").mkdir()
    make_image(inbox / "refs" / "face.png")
    running(settings)
    (inbox / name).write_text(text, encoding="utf-8")
    rejected = inbox / "rejected" / f"{name}.error.txt"
    found = wait_for(
        lambda: rejected.exists() or list(settings.outbox.glob("*_recipeTrip_export_001.webm")),
        timeout=240,
        what="the export",
    )
    assert not rejected.exists(), rejected.read_text(encoding="utf-8")
    video: Path = found[0]
    wait_for(video.with_suffix(".json").exists, what="its sidecar")
    return video
