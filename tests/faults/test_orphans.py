"""A worker killed with SIGKILL while ffmpeg runs takes its ffmpeg with it, and the attempt
after it works in a folder of its own; nothing is left in storage once the job has ended."""

from __future__ import annotations

import os
import signal
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.fixtures.database import write_config
from tests.fixtures.media import MakeClip
from tests.fixtures.pipeline import (
    job_ended,
    job_row,
    queue_export,
    ready_clips,
    start_work,
    wait_for,
)
from vidgen.db.jobs import cancel_project
from vidgen.db.session import Database
from vidgen.specs import ExportSpec, InterpolateSpec, Quality

# minterpolate at 512x512 runs for minutes on the reference machine, far longer than the waits.
_SLOW_EXPORT = ExportSpec(interpolate=InterpolateSpec(fps=60), quality=Quality.HIGH)


def _ffmpegs_in(folder: Path) -> list[int]:
    """Pids of the ffmpeg processes whose command line names something under ``folder``."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            argv = (entry / "cmdline").read_bytes().split(b"\0")
        except OSError:  # ended meanwhile
            continue
        if Path(os.fsdecode(argv[0])).name == "ffmpeg" and any(
            os.fsencode(folder) in arg for arg in argv
        ):
            found.append(int(entry.name))
    return found


@pytest.fixture
def no_stray_ffmpeg(tmp_path: Path) -> Iterator[None]:
    """Whatever the test found, no ffmpeg of it outlives it."""
    yield
    for pid in _ffmpegs_in(tmp_path):
        os.kill(pid, signal.SIGKILL)


@pytest.mark.usefixtures("no_stray_ffmpeg")
def test_a_killed_worker_leaves_no_ffmpeg_and_the_next_attempt_has_its_own_folder(
    make_clip: MakeClip,
    database: Database,
    tmp_path: Path,
    processes: list[subprocess.Popen[bytes]],
) -> None:
    url = database.engine.url.render_as_string(hide_password=False)
    config = write_config(tmp_path, url, jobs={"leaseSeconds": 2.0})
    clip_ids = ready_clips(database, [make_clip(512, 512, 8, 2.0)] * 3)
    job_id = queue_export(database, clip_ids, _SLOW_EXPORT, tmp_path / "outbox")
    job_dir = tmp_path / "storage" / "testProject" / "work" / job_id
    first = start_work(config, processes)
    wait_for(lambda: _ffmpegs_in(tmp_path), timeout=60, what="ffmpeg to start")
    os.kill(first.pid, signal.SIGKILL)
    first.wait(timeout=10)
    wait_for(lambda: not _ffmpegs_in(tmp_path), timeout=20, what="ffmpeg to die with its worker")

    start_work(config, processes)
    wait_for(lambda: job_row(database, job_id).attempts == 2, timeout=60, what="the next attempt")
    wait_for(lambda: _ffmpegs_in(tmp_path), timeout=60, what="the next attempt's ffmpeg")
    assert sorted(p.name for p in job_dir.iterdir()) == ["attempt-2"]
    cancel_project(database, job_row(database, job_id).project_id)
    job = wait_for(job_ended(database, job_id), timeout=30, what="the cancel")
    assert job.job_status == "cancelled"
    assert not job_dir.exists()
    assert not _ffmpegs_in(tmp_path)
