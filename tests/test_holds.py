"""Leaving vidgen running: a PAUSE file holds claiming on every host, GPU hours hold ComfyUI
work while FFmpeg-only work goes on, priorities order the queue, and a job waits for disk space
instead of failing half-way. Real watcher, workers, MariaDB, ffmpeg and Chromium."""

from __future__ import annotations

import os
import shutil
from collections.abc import Callable
from dataclasses import replace
from datetime import UTC, datetime, time, timedelta
from pathlib import Path

import pytest
from playwright.sync_api import Browser, expect
from sqlalchemy import select

from tests.comfyui_double import ComfyUIDouble
from tests.fixtures.browser import SeededStatus, ServeStatus, keep_screenshot
from tests.fixtures.database import make_settings
from tests.fixtures.media import MakeClip
from tests.fixtures.pipeline import StartWatcher, StartWorker, wait_for
from vidgen.config import InboxSettings, Settings
from vidgen.db.models import Job, JobStatus, JobType, Project
from vidgen.db.service_status import service_states
from vidgen.db.session import Database
from vidgen.holds import GpuHours, Holds, Window
from vidgen.runtime import Services
from vidgen.specs import Priority
from vidgen.validation import validate_files

RunVidgen = Callable[[Settings], Services]


def _url(database: Database) -> str:
    return database.engine.url.render_as_string(hide_password=False)


def _drop(inbox: Path, name: str, text: str) -> None:
    partial = inbox / f".{name}.part"
    partial.write_text(text, encoding="utf-8")
    partial.rename(inbox / name)


def _jobs(database: Database) -> list[Job]:
    with database.session() as session:
        return list(session.scalars(select(Job).order_by(Job.created_at)))


def _window_excluding_now() -> str:
    start = datetime.now().astimezone() + timedelta(hours=2)
    return f"{start:%H:%M}-{start + timedelta(hours=1):%H:%M}"


def test_windows_cross_midnight_and_say_when_the_next_one_opens() -> None:
    night = Window.parse("22:00-07:00")
    assert night.contains(time(23, 30))
    assert night.contains(time(6, 59))
    assert not night.contains(time(7, 0))
    assert Window.parse("00:00-00:00").contains(time(12, 0))
    hours = GpuHours((night,))
    afternoon = datetime(2026, 1, 1, 19, 0, tzinfo=UTC)
    holds = Holds((), hours, afternoon)
    assert holds.next_window_text() == "next window in 3 h"
    assert holds.lines() == [
        "GPU hours 22:00\u201307:00: next window in 3 h; FFmpeg-only work runs any time"
    ]
    assert Holds((), hours, afternoon.replace(hour=21, minute=15)).next_window_text() == (
        "next window in 45 min"
    )
    assert Holds((), GpuHours(), afternoon).lines() == []


def test_pause_holds_every_host_and_removing_it_resumes(
    make_clip: MakeClip,
    database: Database,
    tmp_path: Path,
    start_watcher: StartWatcher,
    start_worker: StartWorker,
) -> None:
    settings = make_settings(tmp_path, _url(database))
    inbox = settings.inboxes[0].path
    (inbox / "PAUSE").touch()
    start_watcher(settings)
    for name in ("first", "second"):
        shutil.copy(make_clip(160, 120, 8, 1.0), inbox / f"{name}.mp4")
        _drop(inbox, f"{name}.yaml", f"video: {name}.mp4\n")
    # Two workers of other hosts: they see no inbox, only what the watcher reports.
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    remote = replace(settings, inboxes=(InboxSettings(elsewhere),))
    start_worker(remote)
    start_worker(remote)
    wait_for(lambda: len(_jobs(database)) == 4, what="both manifests recorded")
    wait_for(
        lambda: all(j.current_stage == "waiting: paused by inbox/PAUSE" for j in _jobs(database)),
        what="the jobs saying why they wait",
    )
    assert {(j.job_status, j.attempts) for j in _jobs(database)} == {(JobStatus.QUEUED, 0)}
    (inbox / "PAUSE").unlink()
    wait_for(
        lambda: len(list(settings.outbox.glob("*_export_*.mp4"))) == 2,
        timeout=60,
        what="both videos once resumed",
    )


def test_gpu_hours_hold_comfyui_jobs_while_an_import_finishes(
    make_clip: MakeClip,
    database: Database,
    tmp_path: Path,
    comfyui: ComfyUIDouble,
    running: RunVidgen,
) -> None:
    window = _window_excluding_now()
    settings = make_settings(
        tmp_path,
        _url(database),
        comfyui={"urls": [comfyui.url]},
        schedule={"gpuHours": [window]},
    )
    inbox = settings.inboxes[0].path
    shutil.copy(make_clip(160, 120, 8, 1.0), inbox / "holiday.mp4")
    running(settings)
    _drop(inbox, "fox.yaml", "prompt: a fox\nresolution: 64x64\nframes: 8\nsteps: 2\n")
    _drop(inbox, "holiday.yaml", "video: holiday.mp4\n")
    wait_for(
        lambda: list(settings.outbox.glob("*_holiday_export_*.mp4")),
        timeout=60,
        what="the imported video delivered",
    )
    generate = wait_for(
        lambda: next(
            (
                j
                for j in _jobs(database)
                if j.job_type == JobType.GENERATE and "GPU hours" in j.current_stage
            ),
            None,
        ),
        what="the ComfyUI job saying it waits for the GPU hours",
    )
    assert generate.job_status == JobStatus.QUEUED
    assert generate.attempts == 0
    assert "next window in" in generate.current_stage
    assert comfyui.prompts_received == []


def test_a_high_priority_manifest_after_three_normal_ones_finishes_first(
    make_clip: MakeClip, database: Database, tmp_path: Path, running: RunVidgen
) -> None:
    settings = make_settings(tmp_path, _url(database))
    inbox = settings.inboxes[0].path
    (inbox / "PAUSE").touch()  # every manifest is recorded before anything runs
    running(settings)
    for name in ("one", "two", "three", "urgent"):
        shutil.copy(make_clip(160, 120, 8, 1.0), inbox / f"{name}.mp4")
    for count, name in enumerate(("one", "two", "three"), start=1):
        _drop(inbox, f"{name}.yaml", f"video: {name}.mp4\n")  # one after the other: by age
        wait_for(lambda count=count: len(_jobs(database)) == 2 * count, what=f"{name} recorded")
    _drop(inbox, "urgent.yaml", "video: urgent.mp4\npriority: high\n")
    wait_for(lambda: len(_jobs(database)) == 8, what="all four recorded")
    (inbox / "PAUSE").unlink()
    wait_for(lambda: all(j.job_status == JobStatus.COMPLETED for j in _jobs(database)), 90)
    with database.session() as session:
        exports = session.execute(
            select(Project.project_name, Job.completed_at, Job.priority)
            .join(Project, Project.id == Job.project_id)
            .where(Job.job_type == JobType.EXPORT)
            .order_by(Job.completed_at)
        ).all()
    assert exports[0].project_name == "urgent"
    assert exports[0].priority == Priority.HIGH


def test_a_priority_manifest_moves_a_projects_waiting_jobs(
    make_clip: MakeClip,
    database: Database,
    tmp_path: Path,
    start_watcher: StartWatcher,
) -> None:
    settings = make_settings(tmp_path, _url(database))
    inbox = settings.inboxes[0].path
    shutil.copy(make_clip(160, 120, 8, 1.0), inbox / "trip.mp4")
    start_watcher(settings)  # no worker: the jobs stay queued
    _drop(inbox, "trip.yaml", "project: Summer Trip\nvideo: trip.mp4\n")
    wait_for(lambda: len(_jobs(database)) == 2, what="the project recorded")
    raise_it = tmp_path / "raise.yaml"
    raise_it.write_text("priority: high\nproject: Summer Trip\n", encoding="utf-8")
    said: list[str] = []
    assert validate_files(
        settings, [raise_it], show_workflows=False, echo=said.append, warn=lambda _: None
    )
    assert said == [f"{raise_it}: ok — the waiting jobs of Summer Trip become high priority"]
    shutil.move(raise_it, inbox / "raise.yaml")
    wait_for(
        lambda: {j.priority for j in _jobs(database)} == {Priority.HIGH},
        what="the waiting jobs raised",
    )
    assert not (inbox / "raise.yaml").exists()
    assert list((settings.storage / "summerTrip" / "manifests").glob("*_manifest_002.yaml"))
    _drop(inbox, "nobody.yaml", "priority: low\nproject: Nobody\n")
    error = wait_for(
        lambda: next((inbox / "rejected").glob("nobody*.error.txt"), None), what="rejected"
    )
    said_there = error.read_text(encoding="utf-8")
    assert said_there == "nobody.yaml:2: project: no project or job named 'Nobody'\n"


def test_a_job_waits_for_disk_space_saying_so(
    make_clip: MakeClip,
    database: Database,
    tmp_path: Path,
    start_watcher: StartWatcher,
    start_worker: StartWorker,
) -> None:
    # Room for nothing: every byte must stay free.
    settings = make_settings(tmp_path, _url(database), minFreeBytes=10**18)
    inbox = settings.inboxes[0].path
    shutil.copy(make_clip(160, 120, 8, 1.0), inbox / "trip.mp4")
    start_watcher(settings)
    start_worker(settings)
    _drop(inbox, "trip.yaml", "video: trip.mp4\n")
    export = wait_for(
        lambda: next(
            (
                j
                for j in _jobs(database)
                if j.job_type == JobType.EXPORT and j.current_stage.startswith("waiting for disk")
            ),
            None,
        ),
        what="the export waiting for disk space",
    )
    assert export.job_status == JobStatus.QUEUED
    assert export.attempts == 0
    assert "MB free above minFreeBytes" in export.current_stage
    assert not list(settings.outbox.glob("*.mp4"))


@pytest.fixture
def settings(tmp_path: Path, database: Database) -> Settings:
    """The status page's settings, with GPU hours that exclude now (for the screenshots)."""
    return make_settings(tmp_path, _url(database), schedule={"gpuHours": ["22:00-07:00"]})


@pytest.mark.browser
def test_every_page_says_paused_and_the_gpu_hours(
    chromium: Browser,
    serve_status: ServeStatus,
    seeded: SeededStatus,
    settings: Settings,
    tmp_path: Path,
) -> None:
    (settings.inboxes[0].path / "PAUSE").touch()
    base = serve_status()
    page = chromium.new_page(viewport={"width": 1280, "height": 800})
    for path in ("/", "/projects", f"/jobs/{seeded.running_job_id}"):
        page.goto(base + path)
        holds = page.locator(".banner.hold")
        expect(holds.first).to_contain_text("paused by inbox/PAUSE")
        expect(holds.nth(1)).to_contain_text("GPU hours 22:00\u201307:00")
    page.goto(base + "/")
    expect(page.locator("th", has_text="Priority")).to_be_visible()
    shot = tmp_path / "paused-desktop-light.png"
    page.screenshot(path=str(shot), animations="disabled")
    assert shot.stat().st_size > 10_000
    if keep := os.environ.get("VIDGEN_SCREENSHOTS"):
        keep_screenshot(shot, Path(keep) / shot.name)
    health = page.request.get(base + "/health").json()
    assert health["holds"]["paused"] is True
    assert health["holds"]["pausedBy"] == ["inbox/PAUSE"]
    assert health["holds"]["gpuHours"] == ["22:00-07:00"]
    page.close()


def test_the_watcher_reports_pause_files_at_once(
    database: Database, tmp_path: Path, start_watcher: StartWatcher
) -> None:
    settings = make_settings(tmp_path, _url(database))
    inbox = settings.inboxes[0].path
    start_watcher(settings)

    def reported() -> bool:
        (state,) = service_states(database, "intake")
        return any(i.get("paused") for i in state.details["inboxes"])

    wait_for(lambda: service_states(database, "intake"), what="the first heartbeat")
    assert not reported()
    (inbox / "PAUSE").touch()
    wait_for(reported, timeout=5, what="the pause reported")
    (inbox / "PAUSE").unlink()
    wait_for(lambda: not reported(), timeout=5, what="the resume reported")
