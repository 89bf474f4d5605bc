"""The whole product as a person sees it: vidgen running (watcher, workers, status page), a
manifest dropped into the inbox, and the jobs page in Chromium following it live to 100 %."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Browser, expect

from tests.comfyui_double import ComfyUIDouble
from tests.fixtures.browser import free_port
from tests.fixtures.database import make_settings
from vidgen.db.session import Database
from vidgen.runtime import Part, Services, start

pytestmark = pytest.mark.browser

# Playwright's expect() waits 5 s by default, which a loaded two-core machine can outrun while
# the clip and the export are made; the page.set_default_timeout below covers actions only.
UNTIL = 60_000


@pytest.fixture
def running_vidgen(
    comfyui: ComfyUIDouble, database: Database, tmp_path: Path
) -> Iterator[Services]:
    comfyui.step_seconds = 0.15  # 20 steps: the bar has three seconds to move
    settings = make_settings(
        tmp_path,
        database.engine.url.render_as_string(hide_password=False),
        comfyui={"urls": [comfyui.url]},
        status={"port": free_port()},
    )
    services = start(settings, {Part.WATCH, Part.WORK, Part.STATUS})
    yield services
    services.stop()


def test_a_dropped_manifest_moves_live_on_the_jobs_page(
    chromium: Browser, running_vidgen: Services
) -> None:
    settings = running_vidgen.settings
    page = chromium.new_page(viewport={"width": 1280, "height": 800})
    page.set_default_timeout(30_000)
    page.goto(f"http://127.0.0.1:{settings.status.port}/")
    expect(page.locator("#live-indicator")).to_have_attribute("data-state", "open", timeout=UNTIL)
    page.evaluate("window.notReloaded = true")
    page.evaluate(
        """() => { window.seenValues = [];
        setInterval(() => document.querySelectorAll('tr[data-job-id] progress')
            .forEach(p => window.seenValues.push(p.value)), 50); }"""
    )
    manifest = "project: Live Fox\nresolution: 64x64\nsteps: 20\nframes: 8\nprompt: a fox\n"
    inbox = settings.inboxes[0].path
    (inbox / ".fox.yaml.part").write_text(manifest, encoding="utf-8")
    (inbox / ".fox.yaml.part").rename(inbox / "fox.yaml")

    generate = page.locator("tr[data-job-id]", has=page.locator("text=generate"))
    expect(generate).to_have_count(1, timeout=UNTIL)
    expect(generate.locator(".badge")).to_have_text("active", timeout=UNTIL)
    expect(generate.locator(".badge")).to_have_text("completed", timeout=UNTIL)
    expect(generate.locator("progress")).to_have_js_property("value", 100, timeout=UNTIL)
    export = page.locator("tr[data-job-id]", has=page.locator("text=export"))
    expect(export.locator(".badge")).to_have_text("completed", timeout=UNTIL)
    seen = page.evaluate("window.seenValues")
    assert any(0 < value < 100 for value in seen), "the bar never showed progress between 0 and 100"
    assert page.evaluate("window.notReloaded") is True

    page.goto(f"http://127.0.0.1:{settings.status.port}/projects/liveFox")
    video = page.locator("video").first
    duration = video.evaluate(
        """v => new Promise((done, fail) => {
            if (v.readyState >= 1) return done(v.duration);
            v.addEventListener("loadedmetadata", () => done(v.duration));
            v.addEventListener("error", () => fail(new Error("cannot load " + v.src)));
        })"""
    )
    assert duration == pytest.approx(1.0, abs=0.1)  # 8 frames at 8 fps
    page.close()
