"""The stability goal, "10 runs in a row succeed": ten mixed manifests one after another through
one real `vidgen run` (clips from the ComfyUI double beside an imported video, every export
format, upscaling and interpolation in FFmpeg and in ComfyUI), each delivered to the outbox
under its right name, as the format it asked for."""

from __future__ import annotations

import signal
import subprocess
from pathlib import Path

import pytest

from tests.comfyui_double import ComfyUIDouble
from tests.faults.mixed import (
    EXPORTS,
    delivered,
    drop,
    job_statuses,
    mixed_manifest,
    outputs,
    place_media,
    start_vidgen,
)
from tests.fixtures.browser import free_port
from tests.fixtures.database import make_settings, write_config
from tests.fixtures.media import MakeClip
from tests.fixtures.pipeline import wait_for
from vidgen.db.session import Database
from vidgen.ffmpeg import probe

pytestmark = pytest.mark.slow

RUNS = 10


def test_ten_mixed_manifests_in_a_row_are_all_delivered(
    comfyui: ComfyUIDouble,
    database: Database,
    tmp_path: Path,
    processes: list[subprocess.Popen[bytes]],
    make_clip: MakeClip,
) -> None:
    url = database.engine.url.render_as_string(hide_password=False)
    overrides = {"comfyui": {"urls": [comfyui.url]}, "status": {"port": free_port()}}
    config = write_config(tmp_path, url, **overrides)
    settings = make_settings(tmp_path, url, **overrides)
    inbox = settings.inboxes[0].path
    place_media(inbox, make_clip)
    vidgen = start_vidgen(config, processes, log=tmp_path / "vidgen.log")
    done = []
    for number in range(RUNS):
        manifest = mixed_manifest(number, prefix="soak")
        drop(inbox, manifest)
        wait_for(
            lambda m=manifest: delivered(settings.outbox, [m]),  # type: ignore[misc]
            timeout=120,
            what=f"run {number + 1} of {RUNS} ({manifest.kind.format}, {manifest.kind.extra})",
        )
        done.append(manifest)
        names = outputs(settings.outbox)
        assert len(names) == len(done)  # one video per manifest, nothing else
        (name,) = [n for n in names if manifest.output_pattern.match(n)]
        info = probe(settings.outbox / name)
        kind = manifest.kind
        assert (info.codec, info.width, info.height) == (kind.codec, kind.side, kind.side), name
        if kind.fps is not None:
            assert info.fps == kind.fps, name
        assert (settings.outbox / name).with_suffix(".json").is_file()  # its recipe
    assert {kind.format for kind in EXPORTS} == {"mp4", "mp4-h265", "webm", "gif"}
    wait_for(lambda: set(job_statuses(database)) == {"completed"}, what="every job to be complete")
    vidgen.send_signal(signal.SIGTERM)
    assert vidgen.wait(timeout=30) == 0
    assert not list(inbox.glob("*.yaml"))
    assert not (inbox / "rejected").exists() or not any((inbox / "rejected").iterdir())
