"""The status page in headless Chromium: progress moves live without a reload, clips play and
seek, the layout holds at phone width, and screenshots in light and dark.

Set VIDGEN_SCREENSHOTS to a folder (docs/screenshots) to keep the screenshots there.
"""

from __future__ import annotations

import http.client
import os
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from pathlib import Path
from urllib.parse import quote, urlsplit

import pytest
from playwright.sync_api import Browser, Page, Route, expect
from sqlalchemy import update

from status.rejected import NOT_PLAIN
from tests.fixtures.browser import (
    SeededStatus,
    ServeStatus,
    add_live_jobs,
    assert_same_site,
    keep_screenshot,
    seed_rejected,
)
from tests.fixtures.pipeline import placed_clip, sample_request
from vidgen.config import Settings
from vidgen.db.claims import claim_next
from vidgen.db.jobs import add_generate_job, complete_generate, report_progress
from vidgen.db.models import Job, Project, RunsOn
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


def test_hostile_rejected_files_never_stall_the_page(
    chromium: Browser,
    serve_status: ServeStatus,
    settings: Settings,
    seeded: SeededStatus,
    tmp_path: Path,
) -> None:
    """A symlinked and a FIFO error file: the page shows neither the linked file nor waits
    for the FIFO, and every page answers within a second throughout."""
    secret = tmp_path / "passwd"
    secret.write_text(SECRET, encoding="utf-8")
    rejected = seed_rejected(settings, secret)
    (rejected / "pipe.yaml").write_text("x\n", encoding="utf-8")
    os.mkfifo(rejected / "pipe.yaml.error.txt")  # read as a file, it would wait for a writer
    os.mkfifo(rejected / "alone.yaml.error.txt")
    base = serve_status()
    paths = ["/rejected", "/", "/api/jobs", f"/jobs/{seeded.failed_job_id}", "/rejected"]
    with ThreadPoolExecutor(max_workers=ROUND) as pool:
        for _ in range(3):  # rounds of concurrent requests, fewer than the server's threads
            answers = list(pool.map(lambda path: _answer_within(base + path), paths * 2))
            assert answers == [200] * len(answers)
            page = _open(chromium, base + "/rejected")
            cards = page.locator("li.card")
            expect(cards.filter(has_text="pipe.yaml")).to_contain_text(NOT_PLAIN)
            expect(cards.filter(has_text="night.yaml")).to_contain_text(NOT_PLAIN)
            expect(page.locator("body")).to_contain_text("h\\xf6liday.yaml")
            assert SECRET not in page.content()
            assert "alone.yaml" not in page.content()
            page.context.close()


ROUND = 10  # requests at once; the status page has 16 server threads
SECRET = "root:x:0:0:root:/root:/bin/bash"


def _answer_within(url: str) -> int:
    """The status code of GET ``url``, which must answer within 1 s (a deadline: a request
    stuck behind a FIFO never answers at all)."""
    parts = urlsplit(url)
    connection = http.client.HTTPConnection(parts.hostname or "", parts.port, timeout=1.0)
    try:
        connection.request("GET", parts.path)
        response = connection.getresponse()
        response.read()
        return response.status
    finally:
        connection.close()


def test_a_token_link_aimed_elsewhere_stays_on_the_site(
    chromium: Browser, serve_status: ServeStatus
) -> None:
    base = serve_status(token="t")
    context = chromium.new_context()
    elsewhere: list[str] = []

    def only_this_site(route: Route) -> None:
        if route.request.url.startswith(base + "/"):
            route.continue_()
        else:
            elsewhere.append(route.request.url)
            route.abort()

    context.route("**/*", only_this_site)
    page = context.new_page()
    page.set_default_timeout(TIMEOUT_MS)
    for path in (
        "/%09/evil.example",
        "/%5C%5Cevil.example",
        "/%2F%2Fevil.example",
        "//evil.example",
    ):
        page.goto(f"{base}{path}?token=t")
        assert page.url.startswith(base + "/"), (path, page.url)
        assert_same_site(page.url.removeprefix(base))
    assert elsewhere == []
    context.close()


def _pages(seeded: SeededStatus) -> dict[str, str]:
    return {
        "jobs": "/",
        "project": f"/projects/{seeded.project_name}",
        "outputs": f"/projects/{quote(seeded.korean_project_name)}",
        "job": f"/jobs/{seeded.failed_job_id}",
        "rejected": "/rejected",
    }


@pytest.mark.parametrize("scheme", ["light", "dark"])
@pytest.mark.parametrize("size", ["desktop", "phone"])
def test_screenshots_and_no_sideways_scrolling(
    chromium: Browser,
    serve_status: ServeStatus,
    seeded: SeededStatus,
    settings: Settings,
    tmp_path: Path,
    size: str,
    scheme: str,
) -> None:
    seed_rejected(settings, tmp_path)
    base = serve_status()
    keep = os.environ.get("VIDGEN_SCREENSHOTS")
    for name, path in _pages(seeded).items():
        page = _open(chromium, base + path, size, scheme)
        if name != "rejected":  # the one page that is not live
            _wait_live(page)
        page.wait_for_function(  # a function, not an expression: the page's CSP forbids eval
            "() => [...document.images].every(i => i.complete)"
            " && [...document.querySelectorAll('video')].every(v => v.readyState >= 1)"
        )
        overflow = page.evaluate("document.documentElement.scrollWidth - window.innerWidth")
        assert overflow <= 0, f"{name} scrolls sideways by {overflow} px at {size} width"
        shot = tmp_path / f"{name}-{size}-{scheme}.png"
        # Frozen animations: no loading spinner caught mid-turn over the videos.
        page.screenshot(path=str(shot), animations="disabled")
        assert shot.stat().st_size > 10_000
        if keep:
            keep_screenshot(shot, Path(keep) / shot.name)
        page.context.close()


def test_more_live_jobs_than_a_page_all_show_with_their_counts(
    chromium: Browser, serve_status: ServeStatus, database: Database, tmp_path: Path
) -> None:
    crowd = add_live_jobs(database, 120)  # 50 a page: page 1 shows the newest, crowd[70:]
    moved: list[bool] = []

    def move_everything_first(route: Route) -> None:
        # Between the page and its event stream every job moves on, the ones page 1 shows
        # first, so the first message (the 50 live jobs changed last) holds none of them.
        if not moved:
            now = datetime.now(UTC)
            _set_jobs(database, crowd[70:], progress_percent=37.0, updated_at=now)
            _set_jobs(database, crowd[10:70], progress_percent=12.0, updated_at=now + SECOND)
            _set_jobs(database, crowd[:10], job_status="failed", updated_at=now + SECOND)
            moved.append(True)
        route.continue_()

    context = chromium.new_context(viewport={"width": 1280, "height": 800})
    context.route("**/api/events", move_everything_first)
    page = context.new_page()
    page.set_default_timeout(TIMEOUT_MS)
    page.goto(serve_status())
    _wait_live(page)
    expect(page.locator("ul.counts")).to_have_text("110 queued10 failed")
    rows = page.locator("tbody tr.job-row")
    expect(rows).to_have_count(50)
    page.wait_for_function(  # read again from /api/jobs, since the stream could not carry them
        "() => [...document.querySelectorAll('tbody tr.job-row progress')]"
        ".every(b => b.value === 37)"
    )
    assert rows.evaluate_all("rows => rows.map(r => r.dataset.jobId)") == crowd[70:][::-1]
    page.screenshot(path=str(tmp_path / "crowded-jobs.png"))
    keep = os.environ.get("VIDGEN_SCREENSHOTS")
    if keep:
        keep_screenshot(
            tmp_path / "crowded-jobs.png", Path(keep) / "crowded-jobs-desktop-light.png"
        )
    shown = []
    for number in (2, 3):
        page.locator("a[rel=next]").click()
        expect(page.locator(".pager")).to_contain_text(f"page {number} of 3")
        _wait_live(page)
        shown += rows.evaluate_all("rows => rows.map(r => r.dataset.jobId)")
    assert shown == crowd[:70][::-1]  # with page 1: every job, once
    context.close()


SECOND = timedelta(seconds=1)


def _set_jobs(database: Database, ids: list[str], **values: object) -> None:
    with database.session() as session:
        session.execute(update(Job).where(Job.id.in_(ids)).values(**values))
