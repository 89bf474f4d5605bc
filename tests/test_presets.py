"""Inbox presets: an inbox's ``defaults`` and ``export`` go under what a manifest sets; a
one-line manifest dropped into ``inbox/gif/`` becomes a GIF and one in ``inbox/draft/`` a quick
draft; `vidgen validate` says which preset applied; a preset no manifest could hold stops start."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.comfyui_double import ComfyUIDouble
from tests.fixtures.database import config_for_test, make_settings
from tests.fixtures.pipeline import wait_for
from tests.test_workflows_graphs import one
from vidgen.config import Settings, load_settings
from vidgen.db.models import ComfyPrompt
from vidgen.db.session import Database
from vidgen.errors import ConfigError
from vidgen.ffmpeg import probe
from vidgen.runtime import Services
from vidgen.specs import OutputFormat, Quality
from watcher.manifest import Manifest, check_file
from watcher.presets import check_presets, inbox_for

VIDGEN = str(Path(sys.executable).with_name("vidgen"))
GIF = {"export": {"format": "gif", "interpolate": {"fps": 24, "engine": "ffmpeg"}}}
DRAFT = {"defaults": {"steps": 2, "frames": 8}, "export": {"quality": "draft"}}


def inboxes(root: Path) -> list[dict[str, Any]]:
    inbox = root / "inbox"
    return [
        {"path": str(inbox), "stableSeconds": 0.3},
        {"path": str(inbox / "gif"), "stableSeconds": 0.3, **GIF},
        {"path": str(inbox / "draft"), "stableSeconds": 0.3, **DRAFT},
    ]


@pytest.fixture
def plain_settings(tmp_path: Path) -> Settings:
    for row in inboxes(tmp_path):
        Path(row["path"]).mkdir(parents=True, exist_ok=True)
    return load_settings(
        None,
        {},
        overrides={
            "storage": str(tmp_path / "storage"),
            "outbox": str(tmp_path / "outbox"),
            "inboxes": inboxes(tmp_path),
        },
    )


def read(settings: Settings, folder: str, text: str) -> Manifest:
    path = settings.inboxes[0].path / folder / "trip.yaml"
    path.write_text(text, encoding="utf-8")
    result = check_file(path, settings, None, inbox_for(settings, path))
    assert isinstance(result.manifest, Manifest), result.format()
    return result.manifest


def test_a_preset_goes_under_what_the_manifest_sets(plain_settings: Settings) -> None:
    draft = read(plain_settings, "draft", "prompt: a fox\nsteps: 9\nexport: {format: webm}\n")
    (clip,) = draft.clips
    assert (clip.spec.steps, clip.spec.frames) == (9, 8)  # the clip's own steps win
    assert (draft.export.format, draft.export.quality) == (OutputFormat.WEBM, Quality.DRAFT)
    assert "preset of inbox draft: defaults steps, frames; export quality" in draft.notes
    gif = read(plain_settings, "gif", "prompt: a fox\n")
    assert gif.export.format is OutputFormat.GIF
    assert not gif.export.deliver_as_is
    assert gif.export.interpolate is not None
    assert gif.export.interpolate.fps == 24
    plain = read(plain_settings, "", "prompt: a fox\n")
    assert plain.export.deliver_as_is
    assert not any("preset" in n for n in plain.notes)


def test_a_problem_a_preset_causes_names_the_preset(tmp_path: Path) -> None:
    rows = [{"path": str(tmp_path), "export": {"interpolate": {"fps": 6}, "format": "gif"}}]
    settings = load_settings(None, {}, overrides={"inboxes": rows})
    check_presets(settings)  # a valid export section; only the clips' 8 fps make it wrong
    path = tmp_path / "slow.yaml"
    path.write_text("prompt: a fox\nexport: {format: webm}\n", encoding="utf-8")
    result = check_file(path, settings, None, inbox_for(settings, path))
    assert result.format().splitlines() == [
        "slow.yaml:2: export.interpolate.fps: must be above the clips' frame rate (8 fps), got 6 "
        f"(set by the preset of inbox {tmp_path.name} in config.yaml)"
    ]


def test_a_preset_no_manifest_could_hold_is_refused(tmp_path: Path) -> None:
    rows = [
        {"path": str(tmp_path), "defaults": {"steps": 500, "stepz": 1}, "export": {"format": "avi"}}
    ]
    settings = load_settings(None, {}, overrides={"inboxes": rows})
    with pytest.raises(ConfigError) as raised:
        check_presets(settings)
    message = raised.value.user_message
    assert "inboxes[0].defaults.steps: must be at most 150, got 500" in message
    assert "inboxes[0].defaults.stepz: unknown key 'stepz'" in message
    assert "inboxes[0].export.format:" in message


def test_validate_names_the_preset_it_applied(tmp_path: Path, plain_settings: Settings) -> None:
    config = tmp_path / "config.yaml"
    config.write_text(
        yaml.safe_dump(
            config_for_test(tmp_path, "sqlite://", inboxes=inboxes(tmp_path)), sort_keys=False
        )
    )
    manifest = tmp_path / "inbox" / "gif" / "fox.yaml"
    manifest.write_text("prompt: a fox\n", encoding="utf-8")
    elsewhere = tmp_path / "fox.yaml"
    elsewhere.write_text("prompt: a fox\n", encoding="utf-8")

    def validate(*args: str) -> subprocess.CompletedProcess[str]:
        command = [VIDGEN, "--config", str(config), "validate", *args]
        environment = {"PATH": "/usr/bin:/bin", "VIDGEN_COMFYUI_URLS": "http://127.0.0.1:9"}
        return subprocess.run(
            command, capture_output=True, text=True, check=False, env=environment, timeout=120
        )

    inferred = validate(str(manifest))
    assert inferred.returncode == 0, inferred.stderr
    assert "note: preset of inbox gif: export format, interpolate" in inferred.stdout
    assert "_fox_export_NNN.gif" in inferred.stdout
    named = validate("--inbox", "draft", str(elsewhere))
    assert "note: preset of inbox draft: defaults steps, frames; export quality" in named.stdout
    assert "8 frames" in named.stdout
    # One generated clip is already an h264 mp4: it is copied, so `quality: draft` changes nothing.
    assert "note: quality draft has no effect: the clips are copied into the mp4" in named.stdout
    assert "has no effect" not in inferred.stdout
    unknown = validate("--inbox", "nope", str(elsewhere))
    assert unknown.returncode == 2
    assert "--inbox nope: no inbox of that name" in unknown.stderr


def test_one_line_manifests_in_preset_inboxes_become_a_gif_and_a_draft(
    comfyui: ComfyUIDouble,
    database: Database,
    tmp_path: Path,
    running: Callable[[Settings], Services],
) -> None:
    url = database.engine.url.render_as_string(hide_password=False)
    settings = make_settings(
        tmp_path, url, comfyui={"urls": [comfyui.url]}, inboxes=inboxes(tmp_path)
    )
    for inbox in settings.inboxes:
        inbox.path.mkdir(parents=True, exist_ok=True)
    running(settings)
    (settings.inboxes[1].path / "fox.yaml").write_text("prompt: a fox\n", encoding="utf-8")
    (settings.inboxes[2].path / "owl.yaml").write_text("prompt: an owl\n", encoding="utf-8")
    gif = wait_for(
        lambda: sorted(settings.outbox.glob("*_fox_export_*.gif")), timeout=120, what="the gif"
    )
    info = probe(gif[0])
    # 16 frames at 8 fps interpolated to 24 fps: 2 s, 48 frames, the GIF at most 512 wide.
    assert (info.codec, info.width, info.frame_count) == ("gif", 512, 48)
    assert info.fps == pytest.approx(24, abs=0.05)
    draft = wait_for(
        lambda: sorted(settings.outbox.glob("*_owl_export_*.mp4")), timeout=120, what="the draft"
    )
    assert probe(draft[0]).frame_count == 8
    with database.session() as session:
        graphs = [p.graph for p in session.query(ComfyPrompt)]
    (owl,) = [g for g in graphs if any(n["inputs"].get("text") == "an owl" for n in g.values())]
    assert (one(owl, "KSampler")["steps"], one(owl, "EmptyLatentImage")["batch_size"]) == (2, 8)
