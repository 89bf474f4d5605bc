"""What `vidgen validate --workflows` prints is what the worker sends: for manifests covering
every value the graph tests combine (both generation modes; 8 to 128 frames, so plain and tiled
decoding; square and other sizes; the extreme seeds; Real-ESRGAN 2x and 4x in chunks with both
models; RIFE to 24, 30 and 60 fps with several checkpoints; ComfyUI stages alone, together, and
beside FFmpeg ones), every graph ComfyUI received equals the printed one, once the stand-in job
ids are replaced by the real ones."""

from __future__ import annotations

import shutil
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.comfyui_double import ComfyUIDouble
from tests.fixtures.database import make_settings
from tests.fixtures.media import MakeClip, make_image
from tests.fixtures.pipeline import graphs_sent, wait_for
from vidgen.config import Settings
from vidgen.db.session import Database
from vidgen.runtime import Services
from vidgen.validation import manifest_graphs
from watcher.manifest import check_file
from workflows.catalogue import ModelCatalogue

SEED_MAX = 2**64 - 1

CASES = {
    # The case: a ComfyUI upscale after an FFmpeg interpolation sees 24 fps frames.
    "text, ffmpeg interpolation then Real-ESRGAN 2x": (
        "resolution: 64x64\ndefaults: {steps: 2}\nclips:\n"
        "  - {prompt: dawn, frames: 8, seed: 0}\n"
        f"  - {{prompt: dusk, frames: 17, seed: {SEED_MAX}}}\n"
        "export:\n  interpolate: {fps: 24, engine: ffmpeg}\n"
        "  upscale: {scale: 2, engine: comfyui, model: RealESRGAN_x4plus}\n"
    ),
    "images, Real-ESRGAN 4x then RIFE 30": (
        "resolution: 96x64\ndefaults: {steps: 2, ipAdapterWeight: 0.6}\nclips:\n"
        "  - {prompt: a face, image: refs/face.png, frames: 16, seed: 5}\n"
        "  - {prompt: a face again, image: refs/face.png, frames: 32, seed: 6}\n"
        "export:\n  upscale: {scale: 4, engine: comfyui, model: RealESRGAN_x4plus_anime_6B}\n"
        "  interpolate: {fps: 30, engine: comfyui, model: rife49}\n"
    ),
    "one long clip, RIFE 60 on the clip itself": (
        "resolution: 128x64\nprompt: waves\nframes: 128\nsteps: 2\nseed: 9\n"
        "export:\n  interpolate: {fps: 60, engine: comfyui, model: rife417}\n"
    ),
    "an imported video and a clip, RIFE 24 then lanczos": (
        "resolution: 64x64\nclips:\n  - video: intro.mp4\n"
        "  - {prompt: rain, frames: 8, steps: 2, seed: 3}\n"
        "export:\n  transition: {type: fade, duration: 0.25}\n"
        "  interpolate: {fps: 24, engine: comfyui, model: rife47.pth}\n"
        "  upscale: {scale: 2, engine: ffmpeg}\n"
    ),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_the_graphs_sent_are_the_graphs_validate_printed(
    case: str,
    comfyui: ComfyUIDouble,
    database: Database,
    tmp_path: Path,
    make_clip: MakeClip,
    running: Callable[[Settings], Services],
) -> None:
    url = database.engine.url.render_as_string(hide_password=False)
    settings = make_settings(
        tmp_path, url, comfyui={"urls": [comfyui.url], "upscaleChunkFrames": 20}
    )
    inbox = settings.inboxes[0].path
    (inbox / "refs").mkdir()
    make_image(inbox / "refs" / "face.png")
    shutil.copy(make_clip(64, 64, 8, 1.0), inbox / "intro.mp4")
    draft = tmp_path / "draft" / "case.yaml"
    draft.parent.mkdir()
    draft.write_text(CASES[case], encoding="utf-8")
    shutil.copytree(inbox / "refs", draft.parent / "refs")
    shutil.copy(inbox / "intro.mp4", draft.parent / "intro.mp4")
    # As `vidgen validate` checks it: against what the reachable backend offers.
    checked = check_file(draft, settings, ModelCatalogue(settings.comfyui).installed)
    assert checked.ok, checked.format()
    printed = manifest_graphs(checked, settings)

    running(settings)
    (inbox / "case.yaml").write_text(CASES[case], encoding="utf-8")
    rejected = inbox / "rejected" / "case.yaml.error.txt"
    wait_for(
        lambda: rejected.exists() or list(settings.outbox.glob("*_case_export_001.*")),
        timeout=240,
        what="the export",
    )
    assert not rejected.exists(), rejected.read_text(encoding="utf-8")

    sent = graphs_sent(database)
    assert sorted(sent) == sorted(printed)
    for name, graph in printed.items():
        assert sent[name] == graph, name
    received = {p.prompt_id: p.prompt for p in comfyui.prompts_received if p.accepted}
    assert len(received) == len(sent)
