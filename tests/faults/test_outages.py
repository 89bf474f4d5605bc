"""Outages under a real `vidgen run` fed a stream of mixed manifests: the database restarted and
frozen (SIGSTOP/SIGCONT of mariadbd), a full outbox and a full storage (tmpfs; skipped where
mounting is not permitted), the ComfyUI double gone, stalled and failing, and two workers of
which one is killed. Nothing may be lost, delivered twice or left unfinished."""

from __future__ import annotations

import os
import signal
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.comfyui_double import ComfyUIDouble
from tests.faults.mixed import (
    Mixed,
    Tally,
    all_finished,
    delivered,
    drop,
    mixed_manifest,
    outputs,
    place_media,
    start_vidgen,
    tally,
)
from tests.fixtures.browser import free_port
from tests.fixtures.database import make_settings, write_config
from tests.fixtures.media import MakeClip
from tests.fixtures.mounts import Mounts
from tests.fixtures.pipeline import wait_for
from tests.mariadb import ThrowawayMariaDB
from vidgen.config import Settings
from vidgen.db.models import Job, Project
from vidgen.db.session import Database, open_database, upgrade

pytestmark = pytest.mark.slow

OUTAGE_S = 4.0


@dataclass
class Run:
    """One test's vidgen: its config, settings, database and the manifests dropped so far."""

    config: Path
    settings: Settings
    database: Database
    comfyui: ComfyUIDouble
    root: Path
    processes: list[subprocess.Popen[bytes]]
    dropped: list[Mixed]  # the manifests that must be delivered
    numbered: int = 0  # every manifest gets a project of its own

    @property
    def inbox(self) -> Path:
        return self.settings.inboxes[0].path

    def start(self, command: str = "run") -> subprocess.Popen[bytes]:
        return start_vidgen(self.config, self.processes, command, self.root / "vidgen.log")

    def drop(self, count: int = 1) -> list[Mixed]:
        new = [mixed_manifest(self.numbered + n) for n in range(count)]
        self.numbered += count
        for manifest in new:
            drop(self.inbox, manifest)
        self.dropped += new
        return new

    def wait_recorded(self) -> None:
        """Until intake has recorded every manifest dropped so far (vidgen is up and working)."""

        def recorded() -> bool:
            with self.database.session() as session:
                return session.query(Project).count() == self.numbered

        wait_for(recorded, timeout=120, what="intake to record the manifests")

    def finish(self, timeout_s: float = 180) -> Tally:
        """Wait until every manifest is delivered and every job ended; stop vidgen cleanly."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if delivered(self.settings.outbox, self.dropped) and all_finished(self.database):
                break
            time.sleep(0.2)
        for process in self.processes:
            if process.poll() is None:
                process.send_signal(signal.SIGTERM)
        for process in self.processes:
            process.wait(timeout=30)
        return tally(self.database, self.settings.outbox, self.dropped, self.comfyui, self.root)


MakeRun = Callable[..., Run]


@pytest.fixture
def make_run(
    comfyui: ComfyUIDouble,
    tmp_path: Path,
    processes: list[subprocess.Popen[bytes]],
    make_clip: MakeClip,
    request: pytest.FixtureRequest,
) -> MakeRun:
    """``make(url=None, **overrides)``: a Run on the test MariaDB (or ``url``), not started."""

    def make(url: str | None = None, **overrides: object) -> Run:
        if url is None:
            database: Database = request.getfixturevalue("database")
            url = database.engine.url.render_as_string(hide_password=False)
        else:
            database = open_database(url)
            upgrade(database)
            request.addfinalizer(database.dispose)
        chosen = {"comfyui": {"urls": [comfyui.url]}, "status": {"port": free_port()}, **overrides}
        config = write_config(tmp_path, url, **chosen)
        settings = make_settings(tmp_path, url, **chosen)
        place_media(settings.inboxes[0].path, make_clip)
        return Run(config, settings, database, comfyui, tmp_path, processes, [])

    return make


def assert_nothing_lost(result: Tally) -> None:
    assert result.lost == []
    assert result.duplicated == []
    assert result.stuck == {}
    assert result.failed == {}
    assert result.prompts_twice == 0
    assert result.orphan_ffmpeg == []


# --- the database ---------------------------------------------------------------------------------


def test_a_database_restart_under_a_stream_loses_nothing(
    make_run: MakeRun, own_mariadb: ThrowawayMariaDB
) -> None:
    run = make_run(own_mariadb.url)
    run.start()
    run.drop(2)
    run.wait_recorded()  # clips are being made
    own_mariadb.stop()
    run.drop(1)  # arrives while the database is down
    time.sleep(OUTAGE_S)
    own_mariadb.start()
    run.drop(1)
    assert_nothing_lost(run.finish())


def test_a_frozen_database_under_a_stream_loses_nothing(
    make_run: MakeRun, own_mariadb: ThrowawayMariaDB
) -> None:
    run = make_run(own_mariadb.url)
    run.start()
    run.drop(2)
    run.wait_recorded()
    server = int((own_mariadb.root / "m.pid").read_text().strip())
    os.kill(server, signal.SIGSTOP)  # connections stay open and nothing answers: a hung host
    try:
        run.drop(1)
        time.sleep(OUTAGE_S)
    finally:
        os.kill(server, signal.SIGCONT)
    run.drop(1)
    assert_nothing_lost(run.finish())


# --- disks ----------------------------------------------------------------------------------------


def _fill(folder: Path, leave_bytes: int = 0) -> Path:
    """Fill the filesystem of ``folder`` up to ``leave_bytes`` free; returns the filler."""
    filler = folder / "filler.bin"
    with filler.open("wb") as out:
        while (free := os.statvfs(folder).f_bavail * os.statvfs(folder).f_frsize) > leave_bytes:
            try:
                out.write(b"\0" * min(1 << 16, max(1, free - leave_bytes)))
                out.flush()
            except OSError:
                break
    return filler


def test_a_full_outbox_holds_the_export_saying_so_until_there_is_room(
    make_run: MakeRun, mounts: Mounts, tmp_path: Path
) -> None:
    outbox = mounts.tmpfs(tmp_path / "small-outbox", "1m")
    run = make_run(outbox=str(outbox), minFreeBytes=0)
    filler = _fill(outbox, leave_bytes=4096)  # room for an error report, not for a video
    run.start()
    (full,) = run.drop(1)
    waiting = wait_for(lambda: _waiting_export(run.database), timeout=120, what="the hold")
    assert "MB in outbox, " in waiting.current_stage  # the outbox as people know it
    assert waiting.attempts == 0
    assert not [p.name for p in outbox.iterdir() if p.name.startswith(".")]  # no partial file
    assert not [n for n in outputs(outbox) if full.output_pattern.match(n)]
    filler.unlink()
    run.drop(1)
    result = run.finish()
    assert result.lost == []
    assert result.stuck == {}
    assert result.prompts_twice == 0
    assert result.failed == {}  # the export waited for the room instead of failing half-way


def _waiting_export(database: Database) -> Job | None:
    with database.session() as session:
        return (
            session.query(Job)
            .filter(Job.job_type == "export", Job.current_stage.like("waiting for disk space%"))
            .first()
        )


def _failed_export(database: Database) -> Job | None:
    with database.session() as session:
        return (
            session.query(Job)
            .filter(Job.job_type == "export", Job.job_status == "failed")
            .one_or_none()
        )


def test_a_full_storage_holds_the_manifest_until_there_is_room(
    make_run: MakeRun, mounts: Mounts, tmp_path: Path
) -> None:
    storage = mounts.tmpfs(tmp_path / "small-storage", "2m")
    run = make_run(storage=str(storage), minFreeBytes=0)
    filler = _fill(storage)
    run.start()
    run.drop(1)
    time.sleep(OUTAGE_S)  # it cannot be stored: it waits, it is not rejected
    assert not (run.inbox / "rejected").exists() or not any((run.inbox / "rejected").iterdir())
    filler.unlink()
    run.drop(1)
    assert_nothing_lost(run.finish())


# --- ComfyUI --------------------------------------------------------------------------------------


def test_comfyui_gone_for_a_while_loses_nothing(make_run: MakeRun, comfyui: ComfyUIDouble) -> None:
    run = make_run()
    run.start()
    comfyui.go_away()  # connections refused, as when its process was killed
    run.drop(2)
    time.sleep(OUTAGE_S)
    comfyui.come_back()
    run.drop(1)
    assert_nothing_lost(run.finish())


def test_a_stalled_comfyui_loses_nothing(make_run: MakeRun, comfyui: ComfyUIDouble) -> None:
    run = make_run()
    comfyui.stall("KSampler")
    run.start()
    run.drop(2)
    comfyui.wait_until_stalling(timeout=60)
    time.sleep(OUTAGE_S)  # longer than a lease: the worker must keep its job, not lose it
    comfyui.release()
    assert_nothing_lost(run.finish())


def test_a_failing_comfyui_fails_one_clip_in_words_with_an_error_file(
    make_run: MakeRun, comfyui: ComfyUIDouble
) -> None:
    run = make_run()
    comfyui.fail_at("KSampler", "CUDA out of memory", times=1)
    run.start()
    (broken,) = run.drop(1)
    wait_for(lambda: _failed_export(run.database), timeout=120, what="the export to fail")
    reports = wait_for(
        lambda: list(run.settings.outbox.glob(f"*_{broken.project}_error_*.txt")),
        timeout=30,
        what="the export's error file",
    )
    assert "CUDA out of memory" in reports[0].read_text(encoding="utf-8")
    run.dropped.remove(broken)
    run.drop(1)  # the next one goes through
    result = run.finish()
    assert result.lost == []
    assert result.stuck == {}
    assert result.prompts_twice == 0


# --- two workers ----------------------------------------------------------------------------------


def test_two_workers_one_killed_loses_nothing(make_run: MakeRun, comfyui: ComfyUIDouble) -> None:
    run = make_run()
    run.start("watch")
    first, _second = run.start("work"), run.start("work")
    comfyui.stall("KSampler")
    run.drop(3)
    comfyui.wait_until_stalling(timeout=60)
    first.kill()  # maybe holding the stalled clip, maybe an export or an imported clip
    first.wait(timeout=10)
    comfyui.release()
    run.drop(1)
    assert_nothing_lost(run.finish())
