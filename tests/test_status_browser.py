"""The status page in headless Chromium: progress moves live without a reload, clips play and
seek, the layout holds at phone width, and screenshots in light and dark.

Set VIDGEN_SCREENSHOTS to a folder (docs/screenshots) to keep the screenshots there.
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path
from urllib.parse import quote

import pytest
from playwright.sync_api import Browser, Page, expect

from tests.fixtures.browser import SeededStatus, ServeStatus
from tests.fixtures.pipeline import placed_clip, sample_request
from vidgen.db.claims import claim_next
from vidgen.db.jobs import add_generate_job, complete_generate, report_progress
from vidgen.db.models import Project, RunsOn
from vidgen.db.session import Database

pytestmark = pytest.mark.browser

VIEWPORTS = {"desktop": (1280, 800), "phone": (390, 844)}
TIMEOUT_MS = 10_000


def _open(browser: Browser, url: str, size: str = "desktop", scheme: str = "light") -> Page:
    width, height = VIEWPORTS[size]
    context = browser.new_context(
        viewport={"width": width, "height": height},
        color_scheme=scheme,  # type: ignore[arg-type]
        device_scale_factor=1,
    )
    page = context.new_page()
    page.set_default_timeout(TIMEOUT_MS)
    page.goto(url)
    return page


def _wait_live(page: Page) -> None:
    expect(page.locator("#live-indicator")).to_have_attribute("data-state", "open")


def test_progress_moves_live_to_completion_without_a_reload(
    chromium: Browser, serve_status: ServeStatus, database: Database, seeded: SeededStatus
) -> None:
    page = _open(chromium, serve_status())
    _wait_live(page)
    page.evaluate("window.notReloaded = true")
    row = page.locator(f'tr[data-job-id="{seeded.waiting_job_id}"]')
    bar = row.locator("progress")
    expect(bar).to_have_js_property("value", 0)
    job = claim_next(database, "gpu0", RunsOn.COMFYUI, lease_seconds=60, max_attempts=5)
    assert job is not None
    assert job.id == seeded.waiting_job_id
    for percent in (12.5, 40.0, 85.0):
        report_progress(database, job.id, "gpu0", percent, f"sampling at {percent:.0f} %")
        expect(bar).to_have_js_property("value", percent)
        expect(row.locator(".stage")).to_have_text(f"sampling at {percent:.0f} %")
    expect(row.locator(".badge")).to_have_text("active")
    complete_generate(database, job.id, "gpu0", placed_clip())
    expect(bar).to_have_js_property("value", 100)
    expect(row.locator(".badge")).to_have_text("completed")
    expect(row.locator(".pct")).to_have_text("100 %")
    assert page.evaluate("window.notReloaded") is True
    page.context.close()


def test_a_new_job_appears_on_the_first_page(
    chromium: Browser, serve_status: ServeStatus, database: Database, seeded: SeededStatus
) -> None:
    page = _open(chromium, serve_status())
    _wait_live(page)
    with database.session() as session:
        project = session.query(Project).filter_by(project_name="nightCity").one()
        job = add_generate_job(
            session, project.id, seeded.clip_ids[0], sample_request(), RunsOn.COMFYUI
        )
        job_id = job.id
    row = page.locator(f'tr[data-job-id="{job_id}"]')
    expect(row.locator(".badge")).to_have_text("queued")
    expect(row.locator(".project-link")).to_have_text("Night City")
    assert page.locator("tbody tr").first.get_attribute("data-job-id") == job_id
    page.context.close()


def test_a_clip_and_an_export_play_and_seek(
    chromium: Browser, serve_status: ServeStatus, seeded: SeededStatus
) -> None:
    base = serve_status()
    page = _open(chromium, f"{base}/projects/{seeded.project_name}")
    video = page.locator("video.player").first
    duration = video.evaluate(
        """v => new Promise((done, fail) => {
            if (v.readyState >= 1) return done(v.duration);
            v.addEventListener("loadedmetadata", () => done(v.duration));
            v.addEventListener("error", () => fail(new Error("cannot load " + v.src)));
        })"""
    )
    assert duration == pytest.approx(2.0, abs=0.1)
    seeked = video.evaluate(
        """v => new Promise(done => {
            v.addEventListener("seeked", () => done(v.currentTime), {once: true});
            v.currentTime = 1.5;
        })"""
    )
    assert seeked == pytest.approx(1.5, abs=0.2)
    played = video.evaluate("v => { v.muted = true; return v.play().then(() => true); }")
    assert played is True
    exports = _open(chromium, f"{base}/projects/{quote(seeded.korean_project_name)}")
    webm = exports.locator('video.player[src$=".webm"]')
    duration = webm.evaluate(
        """v => new Promise(done => {
            if (v.readyState >= 1) return done(v.duration);
            v.addEventListener("loadedmetadata", () => done(v.duration));
        })"""
    )
    assert duration == pytest.approx(3.0, abs=0.2)
    page.context.close()
    exports.context.close()


def _pages(seeded: SeededStatus) -> dict[str, str]:
    return {
        "jobs": "/",
        "project": f"/projects/{seeded.project_name}",
        "outputs": f"/projects/{quote(seeded.korean_project_name)}",
        "job": f"/jobs/{seeded.failed_job_id}",
    }


@pytest.mark.parametrize("scheme", ["light", "dark"])
@pytest.mark.parametrize("size", ["desktop", "phone"])
def test_screenshots_and_no_sideways_scrolling(
    chromium: Browser,
    serve_status: ServeStatus,
    seeded: SeededStatus,
    tmp_path: Path,
    size: str,
    scheme: str,
) -> None:
    base = serve_status()
    keep = os.environ.get("VIDGEN_SCREENSHOTS")
    for name, path in _pages(seeded).items():
        page = _open(chromium, base + path, size, scheme)
        _wait_live(page)
        page.wait_for_function(
            "[...document.images].every(i => i.complete)"
            " && [...document.querySelectorAll('video')].every(v => v.readyState >= 1)"
        )
        overflow = page.evaluate("document.documentElement.scrollWidth - window.innerWidth")
        assert overflow <= 0, f"{name} scrolls sideways by {overflow} px at {size} width"
        shot = tmp_path / f"{name}-{size}-{scheme}.png"
        # Frozen animations: no loading spinner caught mid-turn over the videos.
        page.screenshot(path=str(shot), animations="disabled")
        assert shot.stat().st_size > 10_000
        if keep:
            _keep(shot, Path(keep) / shot.name)
        page.context.close()


def _keep(shot: Path, target: Path) -> None:
    """Store a screenshot for the docs with a 256-colour palette: a fraction of the bytes."""
    target.parent.mkdir(parents=True, exist_ok=True)
    palette = "split[a][b];[a]palettegen=max_colors=256[p];[b][p]paletteuse=dither=none"
    quiet = ["-hide_banner", "-loglevel", "error", "-nostdin", "-y"]
    subprocess.run(
        ["ffmpeg", *quiet, "-i", f"file:{shot}", "-vf", palette, f"file:{target}"], check=True
    )
