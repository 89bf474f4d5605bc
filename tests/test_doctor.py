"""`vidgen doctor` in working and broken set-ups: each line ok, warning or error with what to do,
exit 1 on any error."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from tests.comfyui_double import ComfyUIDouble
from tests.fixtures.comfyui import ComfyUIFactory
from tests.fixtures.database import make_settings, write_config
from vidgen.db.session import Database
from vidgen.doctor import Level, diagnose, filesystem_of
from workflows.schema import bundled_object_info

VIDGEN = str(Path(sys.executable).with_name("vidgen"))


def _doctor(
    tmp_path: Path, database: Database, path: str = "/usr/bin:/bin", **overrides: Any
) -> tuple[int, list[str]]:
    url = database.engine.url.render_as_string(hide_password=False)
    config = write_config(tmp_path, url, **{"minFreeBytes": 0, **overrides})
    done = subprocess.run(
        [VIDGEN, "--config", str(config), "doctor"],
        capture_output=True,
        text=True,
        timeout=120,
        env={"PATH": path},
    )
    assert not done.stderr, done.stderr
    return done.returncode, done.stdout.splitlines()


def _levels(lines: list[str], subject: str) -> list[str]:
    return [line.split()[0] for line in lines if subject in line]


def test_a_working_setup_is_all_ok(
    comfyui: ComfyUIDouble, database: Database, tmp_path: Path
) -> None:
    code, lines = _doctor(tmp_path, database, comfyui={"urls": [comfyui.url]})
    assert code == 0, lines
    assert all(line.startswith("ok ") for line in lines), lines
    assert any("libx264, libx265, libvpx-vp9, gif" in line for line in lines)
    assert any("at migration" in line and "(the newest)" in line for line in lines)
    assert any("answers, ComfyUI 0.3.64" in line for line in lines)
    assert any("has every model config.yaml names" in line for line in lines)


def test_no_ffmpeg_on_path_is_an_error(database: Database, tmp_path: Path) -> None:
    empty = tmp_path / "empty-bin"
    empty.mkdir()
    code, lines = _doctor(tmp_path, database, path=str(empty))
    assert code == 1
    (ffmpeg,) = [line for line in lines if line.startswith("error   ffmpeg:")]
    assert "ffmpeg is not installed" in ffmpeg
    assert "apt-get install ffmpeg" in ffmpeg


def test_comfyui_down_is_an_error_saying_what_to_do(database: Database, tmp_path: Path) -> None:
    code, lines = _doctor(tmp_path, database)  # the test settings point at the unused port 9
    assert code == 1
    (line,) = [line for line in lines if "ComfyUI at http://127.0.0.1:9" in line]
    assert line.startswith("error ")
    assert "start ComfyUI there, or fix comfyui.urls" in line


def test_an_old_comfyui_is_a_warning(
    comfyui: ComfyUIDouble, database: Database, tmp_path: Path
) -> None:
    comfyui.comfyui_version = "0.2.7"
    code, lines = _doctor(tmp_path, database, comfyui={"urls": [comfyui.url]})
    assert code == 0, lines
    assert any(
        line.startswith("warning") and "0.2.7 is older than 0.3.64" in line for line in lines
    )


def test_a_missing_model_is_an_error(
    comfyui: ComfyUIDouble, database: Database, tmp_path: Path
) -> None:
    comfyui.set_models("checkpoints", ["somethingElse.safetensors"])
    code, lines = _doctor(tmp_path, database, comfyui={"urls": [comfyui.url]})
    assert code == 1
    (line,) = [line for line in lines if "models.checkpoint" in line]
    assert line.startswith("error ")
    assert "'realisticVisionV51_v51VAE.safetensors' is not installed" in line
    assert "models/checkpoints folder" in line


def test_a_missing_node_pack_is_named(
    comfyui_factory: ComfyUIFactory, database: Database, tmp_path: Path
) -> None:
    reduced = {k: v for k, v in bundled_object_info().items() if not k.startswith("VHS_")}
    info = tmp_path / "object_info.json"
    info.write_text(json.dumps(reduced), encoding="utf-8")
    double = comfyui_factory(object_info_path=info)
    code, lines = _doctor(tmp_path, database, comfyui={"urls": [double.url]})
    assert code == 1
    (line,) = [line for line in lines if "are missing" in line]
    assert line.startswith("error ")
    assert "VHS_LoadVideo" in line
    assert "install ComfyUI-VideoHelperSuite" in line


def test_a_missing_inbox_is_an_error(database: Database, tmp_path: Path) -> None:
    absent = tmp_path / "not-mounted"
    code, lines = _doctor(tmp_path, database, inboxes=[{"path": str(absent)}])
    assert code == 1
    (line,) = [line for line in lines if f"inbox {absent}" in line]
    assert line.startswith("error ")
    assert "create the folder (or mount the share there)" in line


def test_an_unwritable_inbox_is_an_error(database: Database, tmp_path: Path) -> None:
    readonly = tmp_path / "readonly"
    readonly.mkdir()
    # As root, permissions do not stop a write; a read-only mount does.
    mounted = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "ro", "tmpfs", str(readonly)], check=False
    )
    if mounted.returncode != 0:
        pytest.skip("mounting is not permitted here (needs root and mount namespaces)")
    try:
        code, lines = _doctor(tmp_path, database, inboxes=[{"path": str(readonly)}])
    finally:
        subprocess.run(["umount", str(readonly)], check=True)
    assert code == 1
    (line,) = [line for line in lines if f"inbox {readonly}" in line]
    assert line.startswith("error ")
    assert "not writable (Read-only file system)" in line


def test_an_inbox_on_a_share_without_polling_is_a_warning(
    database: Database, tmp_path: Path
) -> None:
    url = database.engine.url.render_as_string(hide_password=False)
    share = tmp_path / "nas share"
    share.mkdir()
    mounts = tmp_path / "mounts"  # /proc/mounts as a machine with this share mounted writes it
    escaped = str(share).replace(" ", "\\040")
    mounts.write_text(
        f"/dev/sda1 / ext4 rw 0 0\n//nas/videos {escaped} cifs rw,vers=3.0 0 0\n", encoding="utf-8"
    )
    assert filesystem_of(share / "sub", mounts) == "cifs"
    for polling, expected in ((False, Level.WARNING), (True, Level.OK)):
        settings = make_settings(tmp_path, url, inboxes=[{"path": str(share), "polling": polling}])
        (finding,) = [f for f in diagnose(settings, mounts=mounts) if f.subject == f"inbox {share}"]
        assert finding.level is expected
        if not polling:
            assert "on a network filesystem (cifs) without polling" in finding.message
            assert "set `polling: true`" in finding.message


def test_a_status_page_beyond_loopback_without_a_token_is_an_error(
    database: Database, tmp_path: Path
) -> None:
    code, lines = _doctor(tmp_path, database, status={"host": "0.0.0.0"})
    assert code == 1
    (line,) = [line for line in lines if line.split()[1:3] == ["status", "page"]]
    assert line.startswith("error ")
    assert "set status.token" in line


def test_little_free_space_is_a_warning(database: Database, tmp_path: Path) -> None:
    code, lines = _doctor(tmp_path, database, minFreeBytes=10**18)
    assert _levels(lines, "storage:") == ["warning"]
    assert any("`vidgen gc`" in line for line in lines)
    assert code == 1  # ComfyUI at port 9 is down; free space alone is no error
