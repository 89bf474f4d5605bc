"""The watcher with real watchdog events on real folders: complete files only, each taken once,
ignored names left alone, outages survived, and the status it reports."""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from sqlalchemy import func, select

from tests.fixtures.database import make_settings
from tests.fixtures.media import png_bytes
from tests.fixtures.mounts import Mounts
from tests.fixtures.pipeline import StartWatcher
from vidgen.config import Settings
from vidgen.db.models import Manifest, Project
from vidgen.db.session import Database
from watcher.intake import Intake

PNG = png_bytes()


def wait_for(condition: Callable[[], bool], timeout_s: float = 15.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        if time.monotonic() > deadline:
            pytest.fail(f"not within {timeout_s} s: {condition.__doc__ or condition}")
        time.sleep(0.02)


def manifests(database: Database) -> int:
    with database.session() as session:
        return int(session.scalar(select(func.count()).select_from(Manifest)) or 0)


def stored(settings: Settings, project: str) -> list[Path]:
    return sorted((settings.storage / project / "manifests").glob("*.yaml"))


@pytest.fixture
def inbox(settings: Settings) -> Path:
    return settings.inboxes[0].path


def test_logs_watching_with_each_inbox(
    start_watcher: StartWatcher,
    settings: Settings,
    caplog: pytest.LogCaptureFixture,
) -> None:
    with caplog.at_level("INFO", logger="watcher.observer"):
        start_watcher(settings)
    lines = [r.getMessage() for r in caplog.records if "watching" in r.getMessage()]
    assert len(lines) == 1
    assert str(settings.inboxes[0].path) in lines[0]


def test_closed_write_is_taken(
    start_watcher: StartWatcher,
    settings: Settings,
    inbox: Path,
    database: Database,
) -> None:
    start_watcher(settings)
    (inbox / "fox.yaml").write_text("prompt: a red fox\n")
    wait_for(lambda: manifests(database) == 1 and not (inbox / "fox.yaml").exists())
    wait_for(lambda: len(stored(settings, "fox")) == 1)  # moved in after the commit
    assert [p.read_text() for p in stored(settings, "fox")] == ["prompt: a red fox\n"]


def test_slow_writer_is_not_read_before_it_closes(
    start_watcher: StartWatcher,
    settings: Settings,
    inbox: Path,
    database: Database,
) -> None:
    start_watcher(settings)
    chunks = ["project: Slow\n", "prompt: a fox\n", "frames: 24\n", "steps: 30\n"]
    with (inbox / "slow.yaml").open("w") as writer:
        for chunk in chunks:  # pauses longer than stableSeconds (0.3 s), 2.4 s in all
            writer.write(chunk)
            writer.flush()
            time.sleep(0.6)
            assert (inbox / "slow.yaml").exists()
        assert manifests(database) == 0
    wait_for(lambda: manifests(database) == 1)
    wait_for(lambda: len(stored(settings, "slow")) == 1)  # moved in after the commit
    assert [p.read_text() for p in stored(settings, "slow")] == ["".join(chunks)]
    assert not (inbox / "rejected").exists()


def test_manifest_moved_in_is_taken_once_stable(
    start_watcher: StartWatcher,
    settings: Settings,
    inbox: Path,
    database: Database,
    tmp_path: Path,
) -> None:
    start_watcher(settings)
    outside = tmp_path / "elsewhere.yaml"
    outside.write_text("prompt: moved in\n")
    outside.rename(inbox / "moved.yaml")
    wait_for(lambda: manifests(database) == 1)
    wait_for(lambda: len(stored(settings, "moved")) == 1)  # moved in after the commit


def test_part_file_renamed_is_taken_once(
    start_watcher: StartWatcher,
    settings: Settings,
    inbox: Path,
    database: Database,
) -> None:
    start_watcher(settings)
    (inbox / "x.part").write_text("prompt: renamed\n")
    time.sleep(0.5)  # a .part file is ignored however long it stays
    assert (inbox / "x.part").exists()
    (inbox / "x.part").rename(inbox / "x.yaml")
    wait_for(lambda: manifests(database) == 1)
    time.sleep(1.5)  # past a rescan: still taken once
    assert manifests(database) == 1
    wait_for(lambda: len(stored(settings, "x")) == 1)  # moved in after the commit


def test_ignored_names_and_subfolders_are_left_alone(
    start_watcher: StartWatcher,
    settings: Settings,
    inbox: Path,
    database: Database,
) -> None:
    ignored = ["~draft.yaml", ".hidden.yaml", "a.yaml.part", "b.tmp", "c.crdownload", "notes.txt"]
    for name in ignored:
        (inbox / name).write_text("prompt: ignored\n")
    (inbox / "refs").mkdir()
    (inbox / "refs" / "nested.yaml").write_text("prompt: not a manifest here\n")
    start_watcher(settings)
    (inbox / "real.yaml").write_text("prompt: real\n")
    wait_for(lambda: manifests(database) == 1)
    time.sleep(1.5)  # a rescan later, still only the real one
    assert manifests(database) == 1
    assert all((inbox / name).exists() for name in ignored)
    assert (inbox / "refs" / "nested.yaml").exists()


def test_same_file_dropped_twice(
    start_watcher: StartWatcher,
    settings: Settings,
    inbox: Path,
    database: Database,
) -> None:
    start_watcher(settings)
    for expected in (1, 2):
        (inbox / "twice.yaml").write_text("prompt: twice\n")
        wait_for(lambda n=expected: manifests(database) == n)  # type: ignore[misc]
    with database.session() as session:
        assert session.scalar(select(func.count()).select_from(Project)) == 1


def test_two_watchers_take_each_file_once(
    start_watcher: StartWatcher,
    settings: Settings,
    inbox: Path,
    database: Database,
) -> None:
    start_watcher(settings)
    start_watcher(settings)
    for n in range(30):
        (inbox / f"m{n:02d}.yaml").write_text(f"project: two {n}\nprompt: file {n}\n")
    wait_for(lambda: manifests(database) == 30, timeout_s=30)
    time.sleep(1.5)
    assert manifests(database) == 30
    assert list(inbox.glob("*.yaml")) == []
    assert not (inbox / "rejected").exists()


def test_polling_inbox(
    start_watcher: StartWatcher,
    tmp_path: Path,
    database: Database,
) -> None:
    url = database.engine.url.render_as_string(hide_password=False)
    share = tmp_path / "share"
    settings = make_settings(
        tmp_path, url, inboxes=[{"path": str(share), "polling": True, "stableSeconds": 0.3}]
    )
    share.mkdir()
    start_watcher(settings)
    with (share / "slow.yaml").open("w") as writer:
        writer.write("prompt: over a share\n")
        writer.flush()
        time.sleep(0.15)  # shorter than stableSeconds: the size changes again before it is read
        writer.write("frames: 24\n")
    wait_for(lambda: manifests(database) == 1)
    wait_for(lambda: len(stored(settings, "slow")) == 1)  # moved in after the commit
    assert [p.read_text() for p in stored(settings, "slow")] == [
        "prompt: over a share\nframes: 24\n"
    ]


def test_files_present_at_start_and_claims_left_by_a_crash(
    start_watcher: StartWatcher,
    settings: Settings,
    inbox: Path,
    database: Database,
) -> None:
    (inbox / "early.yaml").write_text("prompt: there before start\n")
    processing = inbox / ".vidgen" / "processing"
    processing.mkdir(parents=True)
    (processing / "00000000-0000-4000-8000-000000000000__crashed.yaml").write_text("prompt: c\n")
    start_watcher(settings)
    wait_for(lambda: manifests(database) == 2)
    assert list(processing.iterdir()) == []
    wait_for(lambda: len(stored(settings, "crashed")) == 1)  # moved in after the commit
    wait_for(lambda: len(stored(settings, "early")) == 1)  # moved in after the commit


def test_manifest_before_its_image(
    start_watcher: StartWatcher,
    settings: Settings,
    inbox: Path,
    database: Database,
) -> None:
    start_watcher(settings)
    (inbox / "girl.yaml").write_text("prompt: a girl\nimage: refs/girl.png\n")
    time.sleep(0.8)
    assert (inbox / "girl.yaml").exists()
    assert manifests(database) == 0
    (inbox / "refs").mkdir()
    (inbox / "refs" / "girl.png").write_bytes(PNG)
    wait_for(lambda: manifests(database) == 1)
    assert not (inbox / "rejected").exists()


def test_outage_and_return(
    start_watcher: StartWatcher,
    settings: Settings,
    inbox: Path,
    database: Database,
) -> None:
    watcher = start_watcher(settings)
    (inbox / "before.yaml").write_text("prompt: before\n")
    wait_for(lambda: manifests(database) == 1)
    away = inbox.with_name("inbox-away")
    inbox.rename(away)  # the share is unmounted
    wait_for(lambda: not watcher.status().inboxes[0].available)
    state = watcher.status().inboxes[0]
    assert state.path == inbox
    assert "unavailable" in state.message
    (away / "during.yaml").write_text("prompt: during\n")
    away.rename(inbox)  # mounted again, with a file that arrived meanwhile
    wait_for(lambda: watcher.status().inboxes[0].available)
    wait_for(lambda: manifests(database) == 2)
    (inbox / "after.yaml").write_text("prompt: after\n")
    wait_for(lambda: manifests(database) == 3)


def test_a_rejected_manifest_lands_beside_its_error_file(
    start_watcher: StartWatcher, settings: Settings, inbox: Path
) -> None:
    start_watcher(settings)
    (inbox / "bad.yaml").write_text("prompt: a\nframes: 3\n")
    error_file = inbox / "rejected" / "bad.yaml.error.txt"
    moved = inbox / "rejected" / "bad.yaml"
    wait_for(lambda: error_file.exists() and moved.exists())  # the error file is written first
    assert moved.read_text() == "prompt: a\nframes: 3\n"
    assert error_file.read_text() == "bad.yaml:2: frames: must be at least 8, got 3\n"


def test_missing_inbox_at_start_is_an_outage(
    start_watcher: StartWatcher, tmp_path: Path, database: Database
) -> None:
    url = database.engine.url.render_as_string(hide_password=False)
    missing = tmp_path / "not-mounted"
    settings = make_settings(tmp_path, url, inboxes=[{"path": str(missing)}])
    watcher = start_watcher(settings)
    wait_for(lambda: not watcher.status().inboxes[0].available)
    missing.mkdir()
    (missing / "late.yaml").write_text("prompt: late\n")
    os.utime(missing / "late.yaml", (time.time() - 60, time.time() - 60))
    wait_for(lambda: manifests(database) == 1)


@pytest.fixture(params=["inotify", "polling"])
def any_inbox(request: pytest.FixtureRequest, tmp_path: Path, database: Database) -> Settings:
    """Settings whose one inbox is watched with inotify, then with polling."""
    url = database.engine.url.render_as_string(hide_password=False)
    polling = request.param == "polling"
    inbox = {"path": str(tmp_path / "inbox"), "polling": polling, "stableSeconds": 0.3}
    return make_settings(tmp_path, url, inboxes=[inbox], intake={"rescanSeconds": 60.0})


def test_a_name_dropped_again_while_the_first_is_taken_is_taken_at_once(
    start_watcher: StartWatcher, tmp_path: Path, database: Database
) -> None:
    url = database.engine.url.render_as_string(hide_password=False)
    settings = make_settings(tmp_path, url, intake={"rescanSeconds": 60.0})
    inbox = settings.inboxes[0].path
    claimed, release = threading.Event(), threading.Event()

    def hold_the_first(step: str) -> None:
        if step == "claimed" and not claimed.is_set():
            claimed.set()
            release.wait(10)

    start_watcher(settings, Intake(settings, database, on_step=hold_the_first))
    (inbox / "again.yaml").write_text("prompt: the first\n")
    wait_for(claimed.is_set)
    (inbox / "again.yaml").write_text("prompt: the second, under the same name\n")
    release.set()
    wait_for(lambda: manifests(database) == 2, timeout_s=10)  # the rescan is a minute away


def test_a_name_with_a_backslash_is_taken(
    start_watcher: StartWatcher, any_inbox: Settings, database: Database
) -> None:
    inbox = any_inbox.inboxes[0].path
    start_watcher(any_inbox)
    (inbox / "trip\\summer.yaml").write_text("prompt: a fox\n")
    wait_for(lambda: manifests(database) == 1)
    assert not (inbox / "trip\\summer.yaml").exists()


def test_an_empty_file_that_arrives_by_rename_is_rejected_once_stable(
    start_watcher: StartWatcher, any_inbox: Settings, tmp_path: Path
) -> None:
    inbox = any_inbox.inboxes[0].path
    start_watcher(any_inbox)
    (tmp_path / "empty.yaml").write_bytes(b"")
    (tmp_path / "empty.yaml").rename(inbox / "empty.yaml")
    error_file = inbox / "rejected" / "empty.yaml.error.txt"
    wait_for(error_file.exists)
    assert error_file.read_text().startswith("empty.yaml:1: (manifest): the manifest is empty")


def test_a_linked_manifest_is_never_read_from_outside(
    start_watcher: StartWatcher, settings: Settings, inbox: Path, database: Database, tmp_path: Path
) -> None:
    outside = tmp_path / "outside.yaml"
    outside.write_text("prompt: read from outside the inbox\n")
    (inbox / "early.yaml").symlink_to(outside)  # found by the first rescan
    start_watcher(settings)
    (inbox / "late.yaml").symlink_to(outside)  # found by its event
    for name in ("early", "late"):
        error_file = inbox / "rejected" / f"{name}.yaml.error.txt"
        wait_for(error_file.exists)
        assert "is a symbolic link" in error_file.read_text()
    assert manifests(database) == 0
    assert outside.read_text() == "prompt: read from outside the inbox\n"


def test_an_unmounted_share_is_an_outage_and_its_wait_for_files_pauses(
    mounts: Mounts, start_watcher: StartWatcher, tmp_path: Path, database: Database
) -> None:
    url = database.engine.url.render_as_string(hide_password=False)
    share = mounts.tmpfs(tmp_path / "nas")  # the share's own filesystem
    inbox = mounts.bind(share, tmp_path / "mnt")  # mounted on the inbox folder
    grace = 2.0
    settings = make_settings(
        tmp_path,
        url,
        inboxes=[{"path": str(inbox), "stableSeconds": 0.3}],
        intake={"rescanSeconds": 0.3, "missingFilesGraceSeconds": grace},
    )
    watcher = start_watcher(settings)
    (inbox / "girl.yaml").write_text("prompt: a girl\nimage: refs/girl.png\n")
    wait_for(lambda: (inbox / "girl.yaml").exists())
    mounts.unmount(inbox)  # the share goes away: a bare, empty mount point is left
    wait_for(lambda: not watcher.status().inboxes[0].available)
    assert "mounted there is away" in watcher.status().inboxes[0].message
    time.sleep(grace + 0.5)  # longer than the grace passes while the share is away
    mounts.bind(share, inbox)
    wait_for(lambda: watcher.status().inboxes[0].available)
    time.sleep(1.0)  # rescans see the manifest again: it waits on, the outage not counted
    assert not (share / "rejected").exists()
    (share / "refs").mkdir()
    (share / "refs" / "girl.png").write_bytes(PNG)
    wait_for(lambda: manifests(database) == 1)
