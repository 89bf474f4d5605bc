"""Variations and sweeps of a clip: the clips made (seeds drawn once and kept, swept values in the
graphs sent), the contact sheet beside the export (one ffmpeg run, a grid of labelled tiles, a
PNG of its middle frame), and a pick that regenerates nothing and exports the picked clip."""

from __future__ import annotations

import json
import logging
import os
import shutil
import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import Browser, expect

from stages.recipe import recipe_path
from stages.sheet import SheetTile, find_font, sheet_run
from tests.comfyui_double import ComfyUIDouble
from tests.fixtures.browser import ServeStatus
from tests.fixtures.comfyui import ComfyUIServer, within
from tests.fixtures.database import make_settings
from tests.fixtures.pipeline import graphs_sent, wait_for
from vidgen.config import Settings, load_settings
from vidgen.db.models import Clip, Event, Job
from vidgen.db.session import Database
from vidgen.errors import FFmpegError
from vidgen.ffmpeg import probe
from vidgen.runtime import Services
from vidgen.validation import manifest_graphs
from watcher.manifest import Manifest, check_file
from workflows.catalogue import ModelCatalogue

StartVidgen = Callable[[Settings], Services]


@pytest.fixture
def start_vidgen(running: StartVidgen) -> StartVidgen:
    """``start(settings)``: the watcher and workers of `vidgen run` (the shared ``running``)."""
    return running


def _settings(tmp_path: Path, database: Database, comfyui: ComfyUIServer) -> Settings:
    url = database.engine.url.render_as_string(hide_password=False)
    return make_settings(tmp_path, url, comfyui={"urls": [comfyui.url]})


def _drop(inbox: Path, name: str, text: str) -> None:
    partial = inbox / f".{name}.part"
    partial.write_text(text, encoding="utf-8")
    partial.rename(inbox / name)


def _outputs(outbox: Path, pattern: str) -> list[Path]:
    return sorted(p for p in outbox.glob(pattern) if not p.name.startswith("."))


def _samplers(comfyui: ComfyUIServer) -> list[dict[str, Any]]:
    """The KSampler inputs of every generation prompt the double accepted, in order."""
    found = []
    for received in comfyui.prompts_received:
        if not received.accepted:
            continue
        for node in received.prompt.values():
            if node.get("class_type") == "KSampler":
                found.append(node["inputs"])
    return found


def _clips(database: Database) -> list[Clip]:
    with database.session() as session:
        return list(session.query(Clip).order_by(Clip.order_index))


def _export_completed(database: Database) -> bool:
    with database.session() as session:
        return session.query(Job).filter_by(job_type="export", job_status="completed").count() > 0


def _sheet_argv(records: list[logging.LogRecord]) -> str:
    """The filter graph of the ffmpeg run that made the contact sheet, as the wrapper ran it."""
    for record in records:
        if record.name == "vidgen.ffmpeg" and "xstack" in record.getMessage():
            argv = record.args[0] if isinstance(record.args, tuple) else []
            return str(argv[argv.index("-filter_complex") + 1])
    pytest.fail("no ffmpeg run with xstack was logged")


def _png_size(png: Path) -> tuple[int, int]:
    """(width, height) of a PNG, as ffprobe reads it (vidgen's probe takes videos only)."""
    out = subprocess.run(
        ["ffprobe", "-v", "error", "-show_entries", "stream=width,height", "-of", "json", str(png)],
        check=True,
        capture_output=True,
    ).stdout
    stream = json.loads(out)["streams"][0]
    return int(stream["width"]), int(stream["height"])


def _tiles(png: Path, columns: int, rows: int) -> list[bytes]:
    """The raw RGB pixels of each tile of the sheet's PNG."""
    size = _png_size(png)
    width, height = size[0] // columns, size[1] // rows
    tiles = []
    for row in range(rows):
        for column in range(columns):
            crop = f"crop={width}:{height}:{column * width}:{row * height}"
            raw = subprocess.run(
                [
                    "ffmpeg",
                    "-v",
                    "error",
                    "-i",
                    str(png),
                    "-vf",
                    crop,
                    "-f",
                    "rawvideo",
                    "-pix_fmt",
                    "rgb24",
                    "-",
                ],
                check=True,
                capture_output=True,
            ).stdout
            tiles.append(raw)
    return tiles


VARIATIONS = (
    "project: Takes\nresolution: 96x64\nclips:\n"
    "  - {prompt: a red fox in snow, steps: 2, frames: 8, variations: 4}\n"
    "  - {prompt: the fox sleeps, steps: 2, frames: 8, seed: 7}\n"
    "  - {prompt: the fox wakes, steps: 2, frames: 8, sweep: {cfg: [5, 9]}}\n"
)


@pytest.mark.real_comfyui
def test_four_variations_make_four_clips_and_a_labelled_contact_sheet(
    comfyui: ComfyUIServer,
    database: Database,
    tmp_path: Path,
    start_vidgen: StartVidgen,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG, logger="vidgen.ffmpeg")
    settings = _settings(tmp_path, database, comfyui)
    start_vidgen(settings)
    _drop(settings.inboxes[0].path, "takes.yaml", VARIATIONS)
    exports = wait_for(
        lambda: _outputs(settings.outbox, "*_takes_export_*.mp4"),
        timeout=within(comfyui, 120),
        what="the export",
    )
    sheets = _outputs(settings.outbox, "*_takes_sheet_*")
    assert [p.name[8:] for p in sheets] == [
        "_takes_sheet_001.mp4",
        "_takes_sheet_001.png",
        "_takes_sheet_002.mp4",
        "_takes_sheet_002.png",
    ]

    clips = _clips(database)
    names = ["clip1 v1", "clip1 v2", "clip1 v3", "clip1 v4", "clip2", "clip3 v1", "clip3 v2"]
    assert [c.clip_name for c in clips] == names
    seeds = [c.seed_value for c in clips[:4]]
    assert len(set(seeds)) == 4  # four seeds, drawn at intake
    swept = clips[5:]
    assert [c.cfg_scale for c in swept] == [5.0, 9.0]
    assert swept[0].seed_value == swept[1].seed_value  # a sweep without seed shares one
    sent_seeds = sorted(s["seed"] for s in _samplers(comfyui))
    assert sent_seeds == sorted([*seeds, 7, swept[0].seed_value, swept[0].seed_value])

    # The grid: 2 x 2 tiles of the clip's own size, as long as the clip.
    sheet = probe(sheets[0])
    assert (sheet.width, sheet.height, sheet.codec) == (192, 128, "h264")
    assert sheet.frame_count == 8
    assert abs(sheet.duration_sec - 1.0) < 0.01
    assert _png_size(sheets[1]) == (192, 128)
    tiles = _tiles(sheets[1], 2, 2)
    assert len(set(tiles)) == 4  # the double's frames are alike: the labels tell them apart

    graph = _sheet_argv(caplog.records)  # the first sheet's run
    assert graph.count("drawtext=") == 4
    assert graph.count("xstack=inputs=4") == 1
    for seed in seeds:
        assert f"text=seed {seed}:" in graph
    assert "select=eq(n\\,4)" in graph  # the middle of 8 frames

    with database.session() as session:  # the "completed" notification names them all
        (event,) = session.query(Event).filter_by(kind="completed").all()
    assert event.payload["outputs"] == [
        exports[0].name,
        recipe_path(exports[0]).name,
        *(p.name for p in sheets),
    ]

    second = probe(sheets[2])  # two tiles side by side, one row
    assert (second.width, second.height) == (192, 64)

    # The export plays the first variation of each: 3 s, and its recipe says so.
    export = probe(exports[0])
    assert abs(export.duration_sec - 3.0) < 0.1
    recipe = json.loads(recipe_path(exports[0]).read_text(encoding="utf-8"))
    recipe_clips = recipe["manifest"]["clips"]
    assert [c["seed"] for c in recipe_clips] == [seeds[0], 7, swept[0].seed_value]
    assert [c["cfg"] for c in recipe_clips][2] == 5.0


@pytest.mark.real_comfyui
def test_the_sweep_sends_every_combination_as_validate_prints_it(
    comfyui: ComfyUIServer,
    database: Database,
    tmp_path: Path,
    start_vidgen: StartVidgen,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG, logger="vidgen.ffmpeg")
    settings = _settings(tmp_path, database, comfyui)
    text = (
        "project: Sweep\nresolution: 64x64\n"
        "prompt: waves at dusk\nframes: 8\ncfg: 6\nsweep: {seed: [1, 2], steps: [2, 3]}\n"
    )
    draft = tmp_path / "draft" / "sweep.yaml"
    draft.parent.mkdir()
    draft.write_text(text, encoding="utf-8")
    checked = check_file(draft, settings, ModelCatalogue(settings.comfyui).installed)
    assert checked.ok, checked.format()
    printed = manifest_graphs(checked, settings)
    assert sorted(printed) == ["clip1 v1", "clip1 v2", "clip1 v3", "clip1 v4"]

    start_vidgen(settings)
    _drop(settings.inboxes[0].path, "sweep.yaml", text)
    (export,) = wait_for(
        lambda: _outputs(settings.outbox, "*_sweep_export_*.mp4"),
        timeout=within(comfyui, 120),
        what="the export",
    )
    assert _outputs(settings.outbox, "*_sweep_sheet_001.*")
    sent = graphs_sent(database)
    assert {name: sent[name] for name in printed} == printed
    swept = {(s["seed"], s["steps"], s["cfg"]) for s in _samplers(comfyui)}
    assert swept == {(1, 2, 6.0), (1, 3, 6.0), (2, 2, 6.0), (2, 3, 6.0)}
    graph = _sheet_argv(caplog.records)
    for label in ("seed 1 · steps 2", "seed 1 · steps 3", "seed 2 · steps 2", "seed 2 · steps 3"):
        assert f"text={label}:" in graph
    # A lone clip without an export section is delivered as it is: the first combination.
    assert abs(probe(export).duration_sec - 1.0) < 0.01


@pytest.mark.real_comfyui
def test_a_pick_regenerates_nothing_and_exports_the_picked_variation(
    comfyui: ComfyUIServer, database: Database, tmp_path: Path, start_vidgen: StartVidgen
) -> None:
    settings = _settings(tmp_path, database, comfyui)
    inbox = settings.inboxes[0].path
    start_vidgen(settings)
    text = "project: Pick\nresolution: 64x64\nprompt: a lighthouse\nsteps: 2\nframes: 8\n"
    text += "variations: 3\nexport: {format: webm, quality: draft}\n"
    _drop(inbox, "pick.yaml", text)
    wait_for(
        lambda: _outputs(settings.outbox, "*_export_001.webm"),
        timeout=within(comfyui, 120),
        what="export 1",
    )
    prompts = len(comfyui.prompts_received)
    assert prompts == 3
    seeds = [c.seed_value for c in _clips(database)]
    stored = settings.storage / "pick" / "manifests"
    _drop(inbox, "pick.yaml", text)  # the same again: nothing changes, nothing is queued
    wait_for(lambda: len(list(stored.glob("*_manifest_*.yaml"))) == 2, what="the second drop")
    with database.session() as session:
        assert session.query(Job).count() == 4

    _drop(inbox, "pick.yaml", text + "pick: 2\n")
    second = wait_for(
        lambda: _outputs(settings.outbox, "*_export_002.webm"),
        timeout=within(comfyui, 120),
        what="export 2",
    )
    _drop(inbox, "pick.yaml", text + f"pick: {{seed: {seeds[2]}}}\n")
    third = wait_for(
        lambda: _outputs(settings.outbox, "*_export_003.webm"),
        timeout=within(comfyui, 120),
        what="export 3",
    )
    assert len(comfyui.prompts_received) == prompts  # no clip was generated again
    assert [c.seed_value for c in _clips(database)] == seeds  # the seeds were kept
    assert [p.name[8:] for p in _outputs(settings.outbox, "*_sheet_*")] == [
        "_pick_sheet_001.mp4",
        "_pick_sheet_001.png",
    ]
    for export, seed in ((second[0], seeds[1]), (third[0], seeds[2])):
        recipe = json.loads(recipe_path(export).read_text(encoding="utf-8"))
        assert [c["seed"] for c in recipe["manifest"]["clips"]] == [seed]
    with database.session() as session:
        exports = session.query(Job).filter_by(job_type="export").order_by(Job.created_at).all()
        clip_ids = {c.seed_value: c.id for c in session.query(Clip)}
    assert [e.input_clip_ids for e in exports[1:]] == [[clip_ids[seeds[1]]], [clip_ids[seeds[2]]]]

    # The same pick again changes nothing and queues nothing.
    _drop(inbox, "pick.yaml", text + f"pick: {{seed: {seeds[2]}}}\n")
    wait_for(lambda: len(list(stored.glob("*_manifest_*.yaml"))) == 5, what="the fifth drop")
    with database.session() as session:
        assert session.query(Job).filter_by(job_type="export").count() == 3


def test_a_clip_that_gains_variations_keeps_its_video_as_the_first(
    comfyui: ComfyUIDouble, database: Database, tmp_path: Path, start_vidgen: StartVidgen
) -> None:
    settings = _settings(tmp_path, database, comfyui)
    inbox = settings.inboxes[0].path
    start_vidgen(settings)
    text = "resolution: 64x64\nprompt: a harbour at night\nsteps: 2\nframes: 8\n"
    _drop(inbox, "grow.yaml", text)
    wait_for(lambda: _outputs(settings.outbox, "*_export_001.mp4"), timeout=120, what="export 1")
    (first,) = _clips(database)
    _drop(inbox, "grow.yaml", text + "variations: 3\n")
    wait_for(lambda: _outputs(settings.outbox, "*_sheet_001.png"), timeout=120, what="the sheet")
    assert len(comfyui.prompts_received) == 3  # the first drop's clip, and two more
    clips = _clips(database)
    assert [c.clip_name for c in clips] == ["clip1 v1", "clip1 v2", "clip1 v3"]
    assert (clips[0].id, clips[0].seed_value) == (first.id, first.seed_value)


def test_a_pick_by_a_seed_no_variation_has_is_rejected_naming_the_seeds(
    comfyui: ComfyUIDouble, database: Database, tmp_path: Path, start_vidgen: StartVidgen
) -> None:
    settings = _settings(tmp_path, database, comfyui)
    inbox = settings.inboxes[0].path
    start_vidgen(settings)
    text = "resolution: 64x64\nprompt: a lighthouse\nsteps: 2\nframes: 8\nvariations: 2\n"
    _drop(inbox, "odd.yaml", text)
    wait_for(lambda: _outputs(settings.outbox, "*_odd_export_001.mp4"), timeout=120, what="export")
    seeds = [c.seed_value for c in _clips(database)]
    wrong = 1 if 1 not in seeds else 2
    _drop(inbox, "odd.yaml", text + f"pick:\n  seed: {wrong}\n")
    error = inbox / "rejected" / "odd.yaml.error.txt"
    wait_for(error.exists, what="the rejection")
    message = error.read_text(encoding="utf-8")
    assert message.startswith(
        f"odd.yaml:7: pick.seed: no variation has seed {wrong}; their seeds are"
    )
    assert f"{seeds[0]}, {seeds[1]}" in message


@pytest.fixture
def plain_settings(tmp_path: Path) -> Settings:
    return load_settings(
        None,
        {},
        overrides={
            "storage": str(tmp_path / "storage"),
            "outbox": str(tmp_path / "outbox"),
            "inboxes": [{"path": str(tmp_path / "inbox")}],
        },
    )


@pytest.mark.parametrize(
    ("clip", "expected"),
    [
        (
            "{prompt: a, variations: 3, sweep: {cfg: [1, 2]}}",
            "3: clips[0].sweep: use either `variations` (other seeds) or `sweep`",
        ),
        ("{prompt: a, variations: 17}", "3: clips[0].variations: must be at most 16, got 17"),
        ("{prompt: a, variations: 1}", "3: clips[0].variations: must be at least 2, got 1"),
        ("{prompt: a, cfg: 7, sweep: {cfg: [1, 2]}}", "3: clips[0].cfg: `cfg` is swept"),
        (
            "{prompt: a, sweep: {cfg: [1, 2], steps: [1, 2, 3, 4, 5, 6, 7, 8, 9]}}",
            "3: clips[0].sweep: the sweep makes 2 x 9 = 18 combinations; at most 16",
        ),
        ("{prompt: a, sweep: {cfg: [7]}}", "3: clips[0].sweep: a sweep needs at least two"),
        ("{prompt: a, sweep: {sampler: [euler, dpm]}}", "3: clips[0].sweep.sampler: unknown key"),
        (
            "{prompt: a, sweep: {cfg: [5, 5]}}",
            "3: clips[0].sweep.cfg: expected a list of different",
        ),
        ("{prompt: a, variations: 3, pick: 4}", "3: clips[0].pick: there are only 3 variations"),
        ("{prompt: a, pick: 1}", "3: clips[0].pick: there is nothing to pick from"),
        (
            "{prompt: a, sweep: {cfg: [5, 7]}, pick: {steps: 3}}",
            "3: clips[0].pick.steps: the variations differ only in `cfg`",
        ),
        (
            "{prompt: a, sweep: {cfg: [5, 7]}, pick: {cfg: 6}}",
            "3: clips[0].pick: no variation has cfg 6; they are: cfg 5, cfg 7",
        ),
        (
            "{prompt: a, sweep: {seed: [1, 2]}, pick: {seed: 3}}",
            "3: clips[0].pick: no variation has seed 3; they are: seed 1, seed 2",
        ),
        (
            "{prompt: a, sweep: {cfg: [5, 7], steps: [2, 3]}, pick: {cfg: 7}}",
            "3: clips[0].pick: 2 variations have these values: name every swept setting",
        ),
        (
            "{prompt: a, seed: 18446744073709551614, variations: 3}",
            "3: clips[0].variations: with 3 variations the seeds run from 18446744073709551614",
        ),
        ("{video: intro.mp4, variations: 2}", "3: clips[0].variations: an imported video"),
    ],
)
def test_variations_that_cannot_be_made_are_rejected_by_path_and_line(
    clip: str, expected: str, plain_settings: Settings, tmp_path: Path
) -> None:
    inbox = tmp_path / "inbox"
    inbox.mkdir()
    path = inbox / "bad.yaml"
    path.write_text(f"resolution: 64x64\nclips:\n  - {clip}\n", encoding="utf-8")
    result = check_file(path, plain_settings, None)
    assert result.manifest is None
    assert any(line.startswith(f"bad.yaml:{expected}") for line in result.format().splitlines()), (
        result.format()
    )


def test_variations_with_a_seed_count_up_and_a_sweep_shares_its_seed(
    plain_settings: Settings, tmp_path: Path
) -> None:
    inbox = tmp_path / "inbox"
    inbox.mkdir()
    path = inbox / "ok.yaml"
    path.write_text(
        "clips:\n  - {prompt: a, seed: 41, variations: 3, pick: {seed: 43}}\n"
        "  - {prompt: b, sweep: {cfg: [5, 7.5]}, pick: {cfg: 7.5}}\n",
        encoding="utf-8",
    )
    result = check_file(path, plain_settings, None)
    manifest = result.manifest
    assert isinstance(manifest, Manifest), result.format()
    clips = manifest.clips
    assert [(c.spec.clip_name, c.seed) for c in clips[:3]] == [
        ("clip1 v1", 41),
        ("clip1 v2", 42),
        ("clip1 v3", 43),
    ]
    assert [c.spec.cfg for c in clips[3:]] == [5.0, 7.5]
    assert [c.seed for c in clips[3:]] == [None, None]  # drawn once, at intake, for both
    assert [c.spec.clip_name for c in manifest.played] == ["clip1 v3", "clip2 v2"]


@pytest.mark.browser
def test_the_project_page_shows_the_sheet_among_the_outputs(
    comfyui: ComfyUIDouble,
    database: Database,
    tmp_path: Path,
    start_vidgen: StartVidgen,
    serve_status: ServeStatus,
    chromium: Browser,
) -> None:
    settings = _settings(tmp_path, database, comfyui)  # the folders serve_status's settings use
    start_vidgen(settings)
    _drop(settings.inboxes[0].path, "takes.yaml", VARIATIONS)
    wait_for(lambda: _export_completed(database), timeout=120, what="the export")
    page = chromium.new_page(viewport={"width": 1280, "height": 800})
    base = serve_status()
    page.goto(base + "/projects/takes")
    outputs = page.locator("ul.outputs li")
    expect(outputs).to_have_count(3)  # the export, then its two sheets
    sheet = outputs.nth(1)
    expect(sheet.locator(".card-title")).to_contain_text("_takes_sheet_001.mp4")
    poster = sheet.locator("video").get_attribute("poster") or ""
    assert poster.endswith("_takes_sheet_001.png")
    assert page.request.get(base + poster).headers["content-type"] == "image/png"
    page.wait_for_function(
        "() => [...document.querySelectorAll('video')].every(v => v.readyState >= 1)"
    )
    shot = tmp_path / "variations-outputs-desktop-light.png"
    page.locator("section[aria-labelledby=outputs-h]").screenshot(
        path=str(shot), animations="disabled"
    )
    keep = os.environ.get("VIDGEN_SCREENSHOTS")
    if keep:
        shutil.copy(shot, Path(keep) / shot.name)
    page.close()


def test_a_system_without_fonts_is_told_what_to_install(tmp_path: Path) -> None:
    (tmp_path / "fonts").mkdir()
    with pytest.raises(FFmpegError, match="install fonts-dejavu-core or fonts-noto-cjk"):
        find_font([tmp_path / "fonts", tmp_path / "missing"])
    (tmp_path / "fonts" / "Other.otf").write_bytes(b"")
    (tmp_path / "fonts" / "DejaVuSans.ttf").write_bytes(b"")
    assert find_font([tmp_path / "fonts"]).name == "DejaVuSans.ttf"


@pytest.mark.parametrize(
    ("count", "size", "grid", "tile"),
    [
        (2, (512, 512), (2, 1), (512, 512)),
        (3, (512, 512), (2, 2), (512, 512)),
        (6, (768, 432), (3, 2), (682, 384)),
        (16, (768, 768), (4, 4), (512, 512)),
    ],
)
def test_the_grid_is_as_square_as_it_gets_and_at_most_2048_px(
    count: int,
    size: tuple[int, int],
    grid: tuple[int, int],
    tile: tuple[int, int],
    tmp_path: Path,
) -> None:
    tiles = [SheetTile(tmp_path / f"{n}.mp4", f"cfg {n}") for n in range(count)]
    planned = sheet_run(
        tiles,
        size=size,
        fps=8,
        frames=16,
        video=tmp_path / "s.mp4",
        still=tmp_path / "s.png",
        font=Path("/fonts/a:b.ttf"),
    )
    assert (planned.columns, planned.rows, planned.tile) == (*grid, tile)
    assert planned.filter_graph.count("drawtext=") == count
    assert "fontfile=/fonts/a\\\\:b.ttf:" in planned.filter_graph  # escaped twice
