"""kill -9 of a real `vidgen run` at random points, round after round, while manifests keep
coming (on SQLite and on MariaDB): then one more start must deliver every manifest's video once,
leave no job unfinished, send no ComfyUI prompt twice and leave no ffmpeg running on its own.

VIDGEN_FAULT_ROUNDS sets the rounds (CI: 3 on each database), VIDGEN_FAULT_SEED the kill times;
docs/reliability.md has the longer runs.
"""

from __future__ import annotations

import os
import random
import signal
import subprocess
import time
from pathlib import Path

import pytest

from tests.comfyui_double import ComfyUIDouble
from tests.faults.mixed import (
    Mixed,
    all_finished,
    delivered,
    drop,
    ffmpeg_working_in,
    mixed_manifest,
    place_media,
    record_tally,
    start_vidgen,
    tally,
)
from tests.fixtures.browser import free_port
from tests.fixtures.database import make_settings, write_config
from tests.fixtures.media import MakeClip
from vidgen.db.session import Database

pytestmark = pytest.mark.slow

ROUNDS = int(os.environ.get("VIDGEN_FAULT_ROUNDS", "3"))
SEED = int(os.environ.get("VIDGEN_FAULT_SEED", "0")) or random.randrange(1, 1 << 30)
KILL_AFTER_S = (0.5, 6.0)  # from the start: migrations, intake, a clip, an export


@pytest.mark.parametrize("backend", ["sqlite", "mariadb"])
def test_kill_9_at_random_points_loses_nothing(
    backend: str,
    request: pytest.FixtureRequest,
    comfyui: ComfyUIDouble,
    tmp_path: Path,
    processes: list[subprocess.Popen[bytes]],
    make_clip: MakeClip,
) -> None:
    database: Database = request.getfixturevalue(
        "database" if backend == "mariadb" else "sqlite_database"
    )
    url = database.engine.url.render_as_string(hide_password=False)
    overrides = {"comfyui": {"urls": [comfyui.url]}, "status": {"port": free_port()}}
    config = write_config(tmp_path, url, **overrides)
    settings = make_settings(tmp_path, url, **overrides)
    inbox = settings.inboxes[0].path
    place_media(inbox, make_clip)
    log = tmp_path / "vidgen.log"
    rng = random.Random(SEED)
    manifests: list[Mixed] = []
    orphans: list[int] = []
    for number in range(ROUNDS):
        process = start_vidgen(config, processes, log=log)
        manifests.append(mixed_manifest(number))
        drop(inbox, manifests[-1])
        time.sleep(rng.uniform(*KILL_AFTER_S))
        process.kill()
        process.wait(timeout=10)
        time.sleep(0.5)  # an ffmpeg of the killed process has had time to go too
        orphans += ffmpeg_working_in(tmp_path)
    final = start_vidgen(config, processes, log=log)
    deadline = time.monotonic() + 90 + 20 * ROUNDS
    while time.monotonic() < deadline:
        if delivered(settings.outbox, manifests) and all_finished(database):
            break
        time.sleep(0.2)
    final.send_signal(signal.SIGTERM)
    assert final.wait(timeout=30) == 0
    result = tally(database, settings.outbox, manifests, comfyui, tmp_path)
    record_tally(f"kill rounds, {backend}, seed {SEED}: {result.line(ROUNDS)}")
    assert result.lost == [], f"seed {SEED}"
    assert result.duplicated == [], f"seed {SEED}"
    assert result.stuck == {}, f"seed {SEED}"
    assert result.failed == {}, f"seed {SEED}"
    assert result.prompts_twice == 0, f"seed {SEED}"
    assert orphans == [], f"seed {SEED}: ffmpeg left running by a killed vidgen"
    assert result.orphan_ffmpeg == []
    assert not list(inbox.glob("*.yaml"))
    assert not (inbox / "rejected").exists() or not any((inbox / "rejected").iterdir())
