"""`vidgen gc`: the work folders of ended jobs and the files of removed clips go; on a busy
project (a clip generating against a stalled ComfyUI, an export queued) nothing in use does."""

from __future__ import annotations

import subprocess
import sys
from datetime import timedelta
from pathlib import Path

from tests.comfyui_double import ComfyUIDouble
from tests.fixtures.database import make_settings, write_config
from tests.fixtures.pipeline import (
    StartWorker,
    job_row,
    queue_clip,
    queue_export,
    ready_clips,
    text_clip,
    wait_for,
)
from vidgen.db.models import Clip, Job
from vidgen.db.session import Database
from vidgen.db.types import utcnow
from vidgen.specs import ExportSpec

VIDGEN = str(Path(sys.executable).with_name("vidgen"))


def _file(path: Path, size: int) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"v" * size)
    return path


def _end(database: Database, job_id: str, days_ago: float) -> None:
    with database.session() as session:
        job = session.get_one(Job, job_id)
        job.job_status = "completed"
        job.completed_at = utcnow() - timedelta(days=days_ago)


def test_gc_on_a_busy_project_removes_only_what_nothing_uses(
    comfyui: ComfyUIDouble, database: Database, tmp_path: Path, start_worker: StartWorker
) -> None:
    url = database.engine.url.render_as_string(hide_password=False)
    overrides = {"comfyui": {"urls": [comfyui.url]}}
    settings = make_settings(tmp_path, url, **overrides)
    storage = settings.storage / "testProject"
    comfyui.stall("KSampler")
    _, generating = queue_clip(database, text_clip(settings))
    start_worker(settings, comfyui.url)
    comfyui.wait_until_stalling(timeout=30)
    assert job_row(database, generating).job_status == "active"
    live_work = _file(storage / "work" / generating / "partial.mp4", 1000)

    files = [_file(storage / "clips" / f"clip{i}.mp4", 2000) for i in range(3)]
    thumbs = [_file(storage / "thumbnails" / f"clip{i}.jpg", 100) for i in range(3)]
    kept_ready, removed_in_use, removed_unused = ready_clips(database, files, "busyProject")
    with database.session() as session:
        for clip_id, thumb in zip(
            (kept_ready, removed_in_use, removed_unused), thumbs, strict=True
        ):
            session.get_one(Clip, clip_id).thumbnail_path = str(thumb)
        for clip_id in (removed_in_use, removed_unused):
            session.get_one(Clip, clip_id).clip_status = "removed"
    # A queued export from an older manifest still joins the removed clip: it stays.
    queued = queue_export(database, [kept_ready, removed_in_use], ExportSpec(), settings.outbox)
    queued_work = _file(storage / "work" / queued / "merged.mp4", 500)
    done_clip = queue_export(database, [kept_ready], ExportSpec(), settings.outbox)
    with database.session() as session:
        session.get_one(Job, done_clip).job_type = "generate"
    _end(database, done_clip, days_ago=0)
    recent_export = queue_export(database, [kept_ready], ExportSpec(), settings.outbox)
    _end(database, recent_export, days_ago=1)
    old_export = queue_export(database, [kept_ready], ExportSpec(), settings.outbox)
    _end(database, old_export, days_ago=30)
    gone = [
        _file(storage / "work" / done_clip / "clip.mp4", 3000),
        _file(storage / "work" / old_export / "01_merge.mp4", 4000),
        _file(storage / "work" / "leftover" / "x.part", 50),
    ]
    kept_export_work = _file(storage / "work" / recent_export / "01_merge.mp4", 700)
    outbox_file = _file(settings.outbox / "20250101_busyProject_export_001.mp4", 800)

    done = subprocess.run(
        [VIDGEN, "--config", str(write_config(tmp_path, url, **overrides)), "gc"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines() == [
        "work folders of ended jobs: 3 (3 files, 7,050 bytes)",
        "clips marked removed: 1 (2 files, 2,100 bytes)",
        "freed 9.2 kB (9,150 bytes) in 5 files",
    ]
    for path in (live_work, queued_work, kept_export_work, outbox_file, files[0], files[1]):
        assert path.exists(), path
    assert thumbs[0].exists()
    assert thumbs[1].exists()
    for path in (*gone, files[2], thumbs[2]):
        assert not path.exists(), path
    with database.session() as session:
        forgotten = session.get_one(Clip, removed_unused)
        assert (forgotten.file_path, forgotten.thumbnail_path) == (None, None)
        assert session.get_one(Clip, removed_in_use).file_path == str(files[1])
    assert job_row(database, generating).job_status == "active"  # still generating
    comfyui.release()
    wait_for(lambda: job_row(database, generating).job_status == "completed", what="the clip")
