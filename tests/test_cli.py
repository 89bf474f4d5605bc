"""The `vidgen` command as a user runs it: exit codes, one-line errors, validate's output."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.comfyui_double import ComfyUIDouble

VIDGEN = str(Path(sys.executable).with_name("vidgen"))
EXAMPLES = Path(__file__).resolve().parent.parent / "examples"


def _vidgen(
    *args: str, cwd: Path, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    environment = {
        "PATH": "/usr/bin:/bin",
        "VIDGEN_COMFYUI_URLS": "http://127.0.0.1:9",
        **(env or {}),
    }
    return subprocess.run(
        [VIDGEN, *args], cwd=cwd, env=environment, capture_output=True, text=True, timeout=120
    )


@pytest.fixture(scope="module")
def examples(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The examples and their media, as a user would copy them."""
    folder = tmp_path_factory.mktemp("examples")
    subprocess.run([sys.executable, str(EXAMPLES / "make_media.py")], check=True)
    shutil.copytree(EXAMPLES / "media", folder / "media")
    for example in EXAMPLES.glob("*.yaml"):
        shutil.copy(example, folder)
    return folder


def test_every_example_is_valid(examples: Path) -> None:
    files = sorted(p.name for p in examples.glob("*.yaml"))
    done = _vidgen("validate", *files, cwd=examples)
    assert done.returncode == 0, done.stdout + done.stderr
    for name in files:
        assert f"{name}: ok" in done.stdout
    assert "_noGpuFade_export_NNN.mp4" in done.stdout
    assert "fade 0.5 s (xfade)" in done.stdout
    assert "no ComfyUI answers" in done.stderr  # a note, kept off stdout


def test_problems_are_listed_by_file_line_and_path(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("clips:\n  - prompt: fox\n    frames: 3\n  - promt: typo\n", encoding="utf-8")
    done = _vidgen("validate", "bad.yaml", cwd=tmp_path)
    assert done.returncode == 1
    assert "bad.yaml:3: clips[0].frames: must be at least 8, got 3" in done.stdout
    assert "bad.yaml:4: clips[1].promt: unknown key 'promt' (did you mean 'prompt'?)" in done.stdout


def test_a_missing_file_is_a_usage_error(tmp_path: Path) -> None:
    done = _vidgen("validate", "nothing-here.yaml", cwd=tmp_path)
    assert done.returncode == 2
    assert "does not exist" in done.stderr
    assert "Traceback" not in done.stderr


def test_workflows_prints_the_graphs_as_json(examples: Path, comfyui: ComfyUIDouble) -> None:
    done = _vidgen(
        "validate",
        "--workflows",
        "text-to-video.yaml",
        cwd=examples,
        env={"VIDGEN_COMFYUI_URLS": comfyui.url},
    )
    assert done.returncode == 0, done.stderr
    graphs = json.loads(done.stdout)
    assert set(graphs) >= {"clip1", "clip2", "clip3", "export: interpolate"}
    sampler = next(n for n in graphs["clip1"].values() if n["class_type"] == "KSampler")
    assert sampler["inputs"]["seed"] == 42
    assert "no ComfyUI answers" not in done.stderr  # the double answered: models were checked


def test_a_model_the_backend_lacks_is_named_with_what_is_installed(
    examples: Path, comfyui: ComfyUIDouble
) -> None:
    (examples / "other-model.yaml").write_text(
        "prompt: a fox\ncheckpoint: dreamshaper_8\n", encoding="utf-8"
    )
    done = _vidgen(
        "validate", "other-model.yaml", cwd=examples, env={"VIDGEN_COMFYUI_URLS": comfyui.url}
    )
    assert done.returncode == 1
    assert "dreamshaper_8" in done.stdout
    assert "realisticVisionV51_v51VAE.safetensors" in done.stdout  # what is installed


def test_a_wrong_setting_stops_with_one_line(tmp_path: Path) -> None:
    done = _vidgen("run", cwd=tmp_path, env={"VIDGEN_STATUS_PORT": "eighty"})
    assert done.returncode == 2
    assert done.stderr.strip() == (
        "vidgen: VIDGEN_STATUS_PORT: expected a port number 0..65535, got 'eighty'"
    )


def test_db_upgrade_and_jobs_work_on_a_fresh_folder(tmp_path: Path) -> None:
    upgraded = _vidgen("db", "upgrade", cwd=tmp_path)
    assert upgraded.returncode == 0, upgraded.stderr
    assert "is up to date" in upgraded.stdout
    assert (tmp_path / "storage" / "vidgen.db").is_file()
    listed = _vidgen("jobs", cwd=tmp_path)
    assert listed.returncode == 0, listed.stderr
    assert "0 in all" in listed.stdout


def test_the_status_page_refuses_to_listen_beyond_loopback_without_a_token(tmp_path: Path) -> None:
    done = _vidgen("status", cwd=tmp_path, env={"VIDGEN_STATUS_HOST": "0.0.0.0"})
    assert done.returncode == 2
    assert done.stderr.strip().splitlines()[-1].startswith("vidgen: status.host is 0.0.0.0")
    assert "Traceback" not in done.stderr


def test_config_prints_the_settings_in_force(tmp_path: Path) -> None:
    (tmp_path / "config.yaml").write_text("generation:\n  resolution: 768x432\n", encoding="utf-8")
    env = {
        "VIDGEN_STATUS_PORT": "9001",
        "VIDGEN_DATABASE_URL": "mysql+pymysql://vidgen:a-password@dbhost/vidgen",
    }
    done = _vidgen("config", cwd=tmp_path, env=env)
    assert done.returncode == 0, done.stderr
    shown = json.loads(done.stdout)
    assert shown["status"]["port"] == 9001
    assert (shown["generation"]["width"], shown["generation"]["height"]) == (768, 432)
    assert shown["storage"] == str((tmp_path / "storage").resolve())
    assert "dbhost/vidgen" in shown["database_url"]
    assert "a-password" not in done.stdout
