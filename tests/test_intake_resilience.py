"""Intake never dies and never strands: poison pills end rejected with an error file and the next
manifest is taken, also after a restart; a database that stops and a disk that fills up while a
claimed manifest is taken delay it (with a log line) instead of stranding it; a dead intake
thread shows on /health and is started again. Real inotify, the real MariaDB, real mounts."""

from __future__ import annotations

import logging
import os
import time
import uuid
from pathlib import Path

import pytest
from sqlalchemy import func, select

from status import create_app
from tests.fixtures.database import make_settings
from tests.fixtures.media import png_bytes
from tests.fixtures.mounts import Mounts
from tests.fixtures.pipeline import StartWatcher, wait_for
from tests.mariadb import ThrowawayMariaDB
from vidgen.config import Settings
from vidgen.db.models import Manifest
from vidgen.db.session import Database, open_database, upgrade
from vidgen.safe_files import shown_name
from watcher.files import claim_name
from watcher.intake import Intake, IntakeResult

LONG = "x" * 245 + ".yaml"  # 250 bytes: NAME.error.txt would pass the 255-byte limit
NOT_UTF8 = os.fsdecode(b"caf\xe9.yaml")  # a name from an old Windows share

# (id, file name, manifest, the error file's text)
PILLS = [
    ("nan-cfg", "cfg.yaml", "prompt: a\ncfg: .nan\n", "cfg.yaml:2: cfg: .nan is not a number"),
    (
        "nan-transition",
        "fade.yaml",
        "clips:\n  - prompt: a\n  - prompt: b\n"
        "export:\n  transition: {type: fade, duration: .nan}\n",
        "fade.yaml:5: export.transition.duration: .nan is not a number",
    ),
    (
        "nan-weight",
        "weight.yaml",
        "prompt: a\nimage: girl.png\nipAdapterWeight: .nan\n",
        "weight.yaml:3: ipAdapterWeight: .nan is not a number",
    ),
    (
        "float-seed",
        "seed.yaml",
        "prompt: a\nseed: 42.0\n",
        "seed.yaml:2: seed: must be a whole number without a decimal point (42), or random",
    ),
    ("long-name", LONG, "prompt: a\nframes: 3\n", f"{LONG}:2: frames: must be at least 8"),
    ("not-utf8", NOT_UTF8, "prompt: a\nframes: 3\n", "caf\\xe9.yaml:2: frames: must be at least 8"),
]


_EACH_PILL = pytest.mark.parametrize(
    ("name", "text", "expected"), [p[1:] for p in PILLS], ids=[p[0] for p in PILLS]
)


def url_of(database: Database) -> str:
    return database.engine.url.render_as_string(hide_password=False)


def manifests(database: Database) -> int:
    with database.session() as session:
        return int(session.scalar(select(func.count()).select_from(Manifest)) or 0)


def error_files(inbox: Path) -> dict[str, str]:
    folder = inbox / "rejected"
    if not folder.is_dir():
        return {}
    return {p.name: p.read_text() for p in folder.iterdir() if p.name.endswith(".error.txt")}


def prepared(settings: Settings) -> Path:
    inbox = settings.inboxes[0].path
    (inbox / "girl.png").write_bytes(png_bytes())
    os.utime(inbox / "girl.png", (time.time() - 60, time.time() - 60))
    return inbox


def assert_rejected_beside_its_error(inbox: Path, name: str, expected: str) -> None:
    (error_name, text), *others = error_files(inbox).items()
    assert others == []
    assert text.startswith(expected), text
    assert len(os.fsencode(error_name)) <= 255
    assert (inbox / "rejected" / error_name.removesuffix(".error.txt")).is_file()
    assert name == LONG or error_name == name + ".error.txt"


@_EACH_PILL
def test_a_poison_pill_is_rejected_and_the_next_manifest_taken(
    settings: Settings,
    database: Database,
    start_watcher: StartWatcher,
    name: str,
    text: str,
    expected: str,
) -> None:
    inbox = prepared(settings)
    start_watcher(settings)
    (inbox / name).write_text(text)
    wait_for(lambda: error_files(inbox), timeout=15, what="the pill's error file")
    assert_rejected_beside_its_error(inbox, name, expected)
    (inbox / "next.yaml").write_text("prompt: the next one\n")
    wait_for(lambda: manifests(database) == 1, timeout=15, what="the next manifest")
    assert list((inbox / ".vidgen" / "processing").iterdir()) == []


@_EACH_PILL
def test_a_poison_pill_left_claimed_by_a_crash_does_not_stop_the_restart(
    settings: Settings,
    database: Database,
    start_watcher: StartWatcher,
    name: str,
    text: str,
    expected: str,
) -> None:
    inbox = prepared(settings)
    processing = inbox / ".vidgen" / "processing"
    processing.mkdir(parents=True)
    claimed = processing / claim_name(str(uuid.uuid4()), name)
    claimed.write_text(text)
    # A name too long for a claim was shortened from the front when it was claimed.
    expected = expected.replace(shown_name(name), shown_name(claimed.name.split("__", 1)[1]))
    (processing / f"{uuid.uuid4()}__crashed.yaml").write_text("prompt: claimed before a crash\n")
    (inbox / "waiting.yaml").write_text("prompt: dropped while vidgen was down\n")
    start_watcher(settings)
    wait_for(lambda: manifests(database) == 2, timeout=15, what="the two good manifests")
    assert_rejected_beside_its_error(inbox, name, expected)
    assert list(processing.iterdir()) == []
    (inbox / "after.yaml").write_text("prompt: and intake is alive\n")
    wait_for(lambda: manifests(database) == 3, timeout=15, what="a manifest after the restart")


def test_a_name_that_is_not_utf8_is_taken(
    settings: Settings, database: Database, start_watcher: StartWatcher
) -> None:
    inbox = prepared(settings)
    start_watcher(settings)
    (inbox / NOT_UTF8).write_text("prompt: a fox\n")
    wait_for(lambda: manifests(database) == 1, timeout=15, what="the manifest")
    with database.session() as session:
        row = session.scalars(select(Manifest)).one()
    assert row.source_path.endswith("caf\\xe9.yaml")
    assert row.resolved_manifest is not None
    assert row.resolved_manifest["file"] == "caf\\xe9.yaml"


def test_the_database_stopped_during_intake_delays_the_manifest(
    own_mariadb: ThrowawayMariaDB,
    tmp_path: Path,
    start_watcher: StartWatcher,
    caplog: pytest.LogCaptureFixture,
) -> None:
    database = open_database(own_mariadb.url)
    upgrade(database)
    settings = make_settings(tmp_path, own_mariadb.url, intake={"retryBackoffSeconds": 0.2})
    inbox = settings.inboxes[0].path
    caplog.set_level(logging.INFO, logger="watcher")
    start_watcher(settings, Intake(settings, database))
    own_mariadb.stop()
    (inbox / "fox.yaml").write_text("prompt: a fox\n")
    wait_for(lambda: "fox.yaml cannot be taken yet" in caplog.text, what="the log line")
    assert "the database is unavailable" in caplog.text
    assert [p.name.endswith("__fox.yaml") for p in (inbox / ".vidgen/processing").iterdir()] == [
        True
    ]
    own_mariadb.start()
    wait_for(lambda: manifests(database) == 1, timeout=60, what="the manifest, once it is back")
    wait_for(lambda: not list((inbox / ".vidgen" / "processing").iterdir()), what="the move")
    assert "accepted " in caplog.text
    database.dispose()


def test_a_disk_that_fills_up_while_copying_a_reference_delays_the_manifest(
    mounts: Mounts,
    tmp_path: Path,
    database: Database,
    start_watcher: StartWatcher,
    caplog: pytest.LogCaptureFixture,
) -> None:
    storage = mounts.tmpfs(tmp_path / "small-disk", size="1m")
    settings = make_settings(
        tmp_path, url_of(database), storage=str(storage), intake={"retryBackoffSeconds": 0.2}
    )
    inbox = settings.inboxes[0].path
    (inbox / "big.png").write_bytes(png_bytes() + bytes(3_000_000))
    os.utime(inbox / "big.png", (time.time() - 60, time.time() - 60))
    caplog.set_level(logging.INFO, logger="watcher")
    start_watcher(settings)
    (inbox / "big.yaml").write_text("prompt: a\nimage: big.png\n")
    wait_for(lambda: "No space left on device" in caplog.text, what="the full disk in the log")
    assert "big.yaml cannot be taken yet" in caplog.text
    assert manifests(database) == 0
    mounts.resize(storage, "20m")  # space freed
    wait_for(lambda: manifests(database) == 1, timeout=30, what="the manifest, once there is room")
    wait_for(lambda: not list((inbox / ".vidgen" / "processing").iterdir()), what="the move")
    (stored,) = (storage / "big" / "refs").iterdir()
    assert stored.read_bytes() == (inbox / "big.png").read_bytes()


class _DiesOnce(Intake):
    """An intake whose thread dies the first time it starts (as a bug or a crash would)."""

    died = False

    def recover(self) -> list[IntakeResult]:
        if not self.died:
            self.died = True
            raise SystemExit("the intake thread dies")
        return super().recover()


@pytest.mark.filterwarnings("ignore::pytest.PytestUnhandledThreadExceptionWarning")
def test_a_dead_intake_thread_is_reported_by_health_and_started_again(
    tmp_path: Path, database: Database, start_watcher: StartWatcher
) -> None:
    settings = make_settings(tmp_path, url_of(database), intake={"heartbeatSeconds": 0.2})
    watcher = start_watcher(settings, _DiesOnce(settings, database))
    client = create_app(settings, database, backend_probes=[]).test_client()
    wait_for(lambda: client.get("/health").status_code == 503, what="/health to notice")
    report = client.get("/health").get_json()["intake"]
    assert report["ok"] is False
    assert [w["alive"] for w in report["watchers"]] == [False]
    assert watcher.ensure_running()  # what `vidgen run` does every second
    wait_for(lambda: client.get("/health").status_code == 200, what="/health to recover")
    (settings.inboxes[0].path / "fox.yaml").write_text("prompt: a fox\n")
    wait_for(lambda: manifests(database) == 1, what="a manifest taken by the new thread")
    watcher.stop()
    assert client.get("/health").get_json()["intake"] == {"ok": True, "watchers": []}
