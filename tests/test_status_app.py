"""The status page through Flask's test client (and waitress where the server matters): every
route, every refusal, the token, the headers, escaping, Range requests, health and SSE."""

from __future__ import annotations

import http.client
import json
import socket
import threading
import time
from collections.abc import Iterable, Iterator
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from io import StringIO
from pathlib import Path
from typing import Any, cast
from urllib.parse import quote

import pytest
from flask import Flask
from flask.testing import FlaskClient
from rich.console import Console
from werkzeug.test import TestResponse

from status import create_app, print_jobs, serve
from status.context import status_context
from status.events import SNAPSHOT_JOBS, event_id
from status.health import BackendHealth
from status.rejected import RejectedListing, RejectedManifest
from tests.comfyui_double import ComfyUIDouble
from tests.fixtures.browser import (
    FAILED_MESSAGE,
    KOREAN_PROMPT,
    WAITING_STAGE,
    SeededStatus,
    ServeStatus,
    StatusMedia,
    add_live_jobs,
    free_port,
    seed_status_data,
)
from tests.fixtures.database import make_settings
from tests.fixtures.pipeline import placed_clip
from vidgen.config import Settings
from vidgen.db.claims import claim_next
from vidgen.db.jobs import complete_generate, report_progress
from vidgen.db.models import Clip, Job, Project, RunsOn
from vidgen.db.session import Database, open_database
from vidgen.errors import ConfigError

ROUTES = [
    "/",
    "/projects",
    "/projects/summerTrip",
    "/jobs/{job}",
    "/rejected",
    "/health",
    "/api/jobs",
    "/api/jobs/{job}",
    "/api/projects",
    "/api/projects/summerTrip",
    "/api/events",
    "/files/outbox/20261126_봄여행_export_001.mp4",
    "/static/style.css",
    "/no/such/page",
]
SECURITY_HEADERS = {
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
}


@pytest.fixture
def app(settings: Settings, database: Database) -> Iterator[Flask]:
    quick = replace(settings, status=replace(settings.status, sse_max_seconds=1.0))
    app = create_app(quick, database)
    yield app
    status_context(app).feed.stop()


@pytest.fixture
def client(app: Flask) -> FlaskClient:
    return app.test_client()


def _text(response: TestResponse) -> str:
    return response.get_data(as_text=True)


def _get(client: FlaskClient, url: str, **kwargs: Any) -> TestResponse:
    """GET, read the body and close the response (a served file stays open until then)."""
    response = client.get(url, **kwargs)
    response.get_data()
    response.close()
    return response


# --- pages ---------------------------------------------------------------------------------------


def test_jobs_page_shows_every_job_newest_first(client: FlaskClient, seeded: SeededStatus) -> None:
    response = client.get("/")
    page = _text(response)
    assert response.status_code == 200
    assert "Summer Trip" in page
    assert "봄 여행" in page
    assert "Night City" in page
    assert page.index(seeded.waiting_job_id) < page.index(seeded.running_job_id)
    assert 'value="40.0"' in page
    assert "sampling: step 8 of 20" in page
    assert FAILED_MESSAGE in page  # a failed job says why, in words
    assert WAITING_STAGE in page  # a waiting job says what it waits for


def test_jobs_page_is_paginated(client: FlaskClient, database: Database) -> None:
    _many_jobs(database, 60)
    first, second = _text(client.get("/")), _text(client.get("/?page=2"))
    assert first.count('class="job-row" data-job-id') == 50
    assert "page 1 of 2" in first
    assert second.count('class="job-row" data-job-id') == 10
    assert "Newer" in second
    assert "No jobs on this page" in _text(client.get("/?page=9"))
    assert client.get("/?page=abc").status_code == 200


def test_project_page_shows_clips_in_order_with_players(
    client: FlaskClient, seeded: SeededStatus
) -> None:
    page = _text(client.get("/projects/summerTrip"))
    prompts = ["waves rolling", KOREAN_PROMPT, "a girl smiling", "a red fox"]
    positions = [page.index(p) for p in prompts]
    assert positions == sorted(positions)
    assert page.count('<video class="player" controls preload="metadata"') == 2
    assert 'poster="/files/storage/summerTrip/thumbnails/' in page
    assert "18446744073709551615" in page  # the largest seed, exactly
    assert 'data-job-id="' + seeded.running_job_id + '" data-kind="clip"' in page
    assert FAILED_MESSAGE in page
    assert "summer-trip.yaml" in page
    assert "/srv/share" not in page
    assert "Resolved manifest" in page
    assert "realisticVisionV51_v51VAE.safetensors" in page


def test_project_outputs_play_or_download_by_format(
    client: FlaskClient, seeded: SeededStatus
) -> None:
    page = _text(client.get(f"/projects/{quote(seeded.korean_project_name)}"))
    for name in ("20261126_봄여행_export_001.mp4", "20261126_봄여행_export_002.webm"):
        assert f'preload="metadata" playsinline src="/files/outbox/{quote(name)}"' in page
    assert "mp4-h265: download to watch" in page  # H.265 is offered as a download only
    assert f'href="/files/outbox/{quote("20261126_봄여행_export_003.mp4")}" download' in page
    assert page.count('<video class="player"') == 2 + 2  # two playable exports, two clips
    assert KOREAN_PROMPT in page


def test_job_page_shows_stages_log_and_graph(client: FlaskClient, seeded: SeededStatus) -> None:
    page = _text(client.get(f"/jobs/{seeded.failed_job_id}"))
    assert "Why it failed" in page
    assert FAILED_MESSAGE in page
    assert "sampling 20 steps" in page
    assert "34.3 s" in page
    assert "CUDA out of memory" in page
    assert "<details" in page
    assert "KSampler" in page
    assert "ADE_" in page
    running = _text(client.get(f"/jobs/{seeded.running_job_id}"))
    assert "running" in running
    assert 'value="40.0"' in running


def test_prompt_with_script_is_shown_as_text(client: FlaskClient, database: Database) -> None:
    hostile = "<script>alert('x')</script> & <img src=x onerror=alert(1)>"
    _many_jobs(database, 1, prompt=hostile, name="evil")
    for path in ("/projects/evil", "/"):
        page = _text(client.get(path))
        assert "<script>alert" not in page
        assert "<img src=x" not in page
    page = _text(client.get("/projects/evil"))
    assert "&lt;script&gt;alert(&#39;x&#39;)&lt;/script&gt; &amp; &lt;img" in page
    assert json.loads(_text(client.get("/api/projects/evil")))["clips"][0]["prompt"] == hostile


def test_rejected_page_lists_files_with_their_error_text(
    client: FlaskClient, settings: Settings
) -> None:
    rejected = settings.inboxes[0].path / "rejected"
    rejected.mkdir()
    (rejected / "trip.yaml").write_text("clips: 3\n", encoding="utf-8")
    (rejected / "trip.yaml.error.txt").write_text(
        "trip.yaml:1: clips: expected a list of clips, found the number 3 <b>\n", encoding="utf-8"
    )
    (rejected / "gone.yaml.error.txt").write_text("gone.yaml:1: (manifest): empty\n", "utf-8")
    page = _text(client.get("/rejected"))
    assert "trip.yaml" in page
    assert "expected a list of clips, found the number 3 &lt;b&gt;" in page
    assert "gone.yaml" in page
    assert "(manifest): empty" in page
    assert str(settings.inboxes[0].path) not in page


def test_rejected_lister_can_be_injected(settings: Settings, database: Database) -> None:
    item = RejectedManifest(
        "share", "x.yaml", "x.yaml:2: seed: expected a number", datetime.now(UTC)
    )
    app = create_app(settings, database, rejected_lister=lambda: RejectedListing([item]))
    assert "expected a number" in _text(app.test_client().get("/rejected"))


def test_projects_page_and_api(client: FlaskClient, seeded: SeededStatus) -> None:
    assert "봄 여행" in _text(client.get("/projects"))
    projects = client.get("/api/projects").get_json()["projects"]
    assert {p["projectName"] for p in projects} == {"summerTrip", "봄여행", "nightCity"}
    summer = next(p for p in projects if p["projectName"] == "summerTrip")
    assert summer["clipCount"] == 4
    assert seeded.project_name == "summerTrip"


# --- JSON API ------------------------------------------------------------------------------------


def test_api_jobs_is_paginated_json(client: FlaskClient, database: Database) -> None:
    _many_jobs(database, 30)
    body = client.get("/api/jobs?page=2&perPage=20").get_json()
    assert (body["page"], body["perPage"], body["total"], body["pages"]) == (2, 20, 30, 2)
    assert len(body["jobs"]) == 10
    assert body["statusCounts"] == {"queued": 30}
    first = client.get("/api/jobs?perPage=1").get_json()["jobs"][0]
    assert set(first) >= {"id", "projectName", "jobType", "jobStatus", "progressPercent"}


def test_api_job_and_project_details(client: FlaskClient, seeded: SeededStatus) -> None:
    job = client.get(f"/api/jobs/{seeded.failed_job_id}").get_json()
    assert job["jobStatus"] == "failed"
    assert job["errorMessage"] == FAILED_MESSAGE
    assert [line["level"] for line in job["logs"]][-2:] == ["WARNING", "ERROR"]
    assert "KSampler" in json.dumps(job["prompts"][0]["graph"])
    project = client.get("/api/projects/summerTrip").get_json()
    assert [c["orderIndex"] for c in project["clips"]] == [0, 1, 2, 3]
    assert project["clips"][3]["seedValue"] == "18446744073709551615"
    assert project["clips"][2]["progressPercent"] == 40.0
    clip_file = _get(client, project["clips"][0]["fileUrl"])
    assert clip_file.status_code == 200
    assert clip_file.mimetype == "video/mp4"
    assert project["manifests"][0]["resolvedManifest"]["projectName"] == "summerTrip"
    exports = client.get("/api/projects/봄여행").get_json()["outputs"]
    assert [o["format"] for o in exports] == ["mp4-h265", "webm", "mp4"]


# --- refusals ------------------------------------------------------------------------------------


@pytest.mark.parametrize("method", ["POST", "PUT", "DELETE", "PATCH", "OPTIONS"])
def test_every_route_refuses_other_methods(
    client: FlaskClient, seeded: SeededStatus, method: str
) -> None:
    for route in ROUTES:
        response = client.open(route.format(job=seeded.running_job_id), method=method)
        assert response.status_code == 405, (method, route)
        assert response.headers["Allow"] == "GET, HEAD"
        assert "Traceback" not in _text(response)


def test_head_is_answered_like_get(client: FlaskClient, seeded: SeededStatus) -> None:
    for route in ("/", "/api/jobs", f"/jobs/{seeded.running_job_id}"):
        response = client.head(route)
        assert response.status_code == 200
        assert response.get_data() == b""


@pytest.mark.parametrize(
    ("path", "json_body"),
    [
        ("/projects/noSuchProject", False),
        ("/jobs/no-such-job", False),
        ("/nothing/here", False),
        ("/api/jobs/no-such-job", True),
        ("/api/projects/noSuchProject", True),
        ("/api/nothing", True),
    ],
)
def test_not_found_says_so_without_internals(
    client: FlaskClient, path: str, json_body: bool
) -> None:
    response = client.get(path)
    assert response.status_code == 404
    if json_body:
        assert response.get_json()["error"]["status"] == 404
    else:
        assert "There is" in _text(response)


def test_security_headers_on_every_response(client: FlaskClient, seeded: SeededStatus) -> None:
    for route in [*ROUTES, "/files/storage/../x"]:
        response = client.get(route.format(job=seeded.running_job_id))
        response.close()
        for name, value in SECURITY_HEADERS.items():
            assert response.headers[name] == value, (route, name)
        policy = response.headers["Content-Security-Policy"]
        assert "default-src 'self'" in policy
        assert "frame-ancestors 'none'" in policy
        assert "unsafe-inline" not in policy


def test_pages_have_no_inline_script_or_style(client: FlaskClient, seeded: SeededStatus) -> None:
    for path in ("/", "/projects/summerTrip", f"/jobs/{seeded.failed_job_id}", "/rejected"):
        page = _text(client.get(path))
        assert "<script>" not in page
        assert " style=" not in page
        assert "<style" not in page
        assert "http://" not in page.split("<main")[0]  # no asset from the internet


def test_an_internal_error_shows_no_trace(settings: Settings, database: Database) -> None:
    def broken() -> RejectedListing:
        raise RuntimeError(f"secret detail in {settings.storage}")

    app = create_app(settings, database, rejected_lister=broken)
    response = app.test_client().get("/rejected")
    assert response.status_code == 500
    assert "secret" not in _text(response)
    assert str(settings.storage) not in _text(response)
    assert "Traceback" not in _text(response)


def test_database_gone_gives_503_pages_and_health(settings: Settings) -> None:
    gone = open_database(f"mysql+pymysql://root:@127.0.0.1:{free_port()}/vidgen")
    app = create_app(settings, gone, backend_probes=[])
    client = app.test_client()
    page = client.get("/")
    assert page.status_code == 503
    assert "database is not answering" in _text(page)
    assert "127.0.0.1" not in _text(page)
    assert client.get("/api/jobs").get_json()["error"]["status"] == 503
    health = client.get("/health")
    assert health.status_code == 503
    assert health.get_json()["database"]["ok"] is False
    assert health.get_json()["status"] == "unavailable"
    gone.dispose()


# --- token ---------------------------------------------------------------------------------------


def _public(settings: Settings, token: str | None) -> Settings:
    return replace(settings, status=replace(settings.status, host="0.0.0.0", token=token))


def test_binding_beyond_loopback_needs_a_token(settings: Settings, database: Database) -> None:
    with pytest.raises(ConfigError, match=r"status\.token") as refused:
        create_app(_public(settings, None), database)
    assert "\n" not in refused.value.user_message
    with pytest.raises(ConfigError, match=r"status\.token"):
        serve(_public(settings, None), database, threading.Event())


def test_token_by_bearer_or_cookie(settings: Settings, database: Database) -> None:
    client = create_app(_public(settings, "s3cret-token"), database).test_client()
    assert client.get("/").status_code == 401
    assert client.get("/api/jobs").get_json()["error"]["status"] == 401
    assert client.get("/", headers={"Authorization": "Bearer wrong"}).status_code == 401
    assert client.get("/", headers={"Authorization": "Bearer s3cret-token"}).status_code == 200
    assert client.get("/projects?token=wrong").status_code == 401
    response = client.get("/projects?token=s3cret-token&x=1")
    assert response.status_code == 303
    assert response.headers["Location"] == "/projects?x=1"
    cookie = response.headers["Set-Cookie"]
    assert "HttpOnly" in cookie
    assert "SameSite=Strict" in cookie
    assert "s3cret-token" not in cookie
    assert client.get("/projects").status_code == 200  # the cookie now carries it
    client.delete_cookie("vidgen_status")
    assert client.get("/projects").status_code == 401


def test_token_redirect_never_leaves_the_site(settings: Settings, database: Database) -> None:
    client = create_app(_public(settings, "t"), database).test_client()
    response = client.get("//evil.example/?token=t")
    assert response.headers["Location"].startswith("/")
    assert not response.headers["Location"].startswith("//")


# --- files ---------------------------------------------------------------------------------------


def _clip_url(client: FlaskClient) -> str:
    return str(client.get("/api/projects/summerTrip").get_json()["clips"][0]["fileUrl"])


def test_files_support_range_and_head(client: FlaskClient, seeded: SeededStatus) -> None:
    url = _clip_url(client)
    whole = _get(client, url)
    size = len(whole.get_data())
    assert whole.headers["Accept-Ranges"] == "bytes"
    assert whole.mimetype == "video/mp4"
    part = _get(client, url, headers={"Range": "bytes=100-199"})
    assert part.status_code == 206
    assert part.headers["Content-Range"] == f"bytes 100-199/{size}"
    assert part.get_data() == whole.get_data()[100:200]
    tail = _get(client, url, headers={"Range": "bytes=-10"})
    assert tail.status_code == 206
    assert tail.get_data() == whole.get_data()[-10:]
    head = client.head(url)
    head.close()
    assert head.status_code == 200
    assert int(head.headers["Content-Length"]) == size
    assert _get(client, url, headers={"Range": f"bytes={size + 10}-"}).status_code == 416
    assert seeded.clip_ids


@pytest.mark.parametrize(
    ("suffix", "mimetype"),
    [
        ("20261126_봄여행_export_002.webm", "video/webm"),
        ("20261126_봄여행_export_001.mp4", "video/mp4"),
    ],
)
def test_outbox_files_have_their_type(
    client: FlaskClient, seeded: SeededStatus, suffix: str, mimetype: str
) -> None:
    response = _get(client, f"/files/outbox/{suffix}")
    assert response.status_code == 200
    assert response.mimetype == mimetype
    assert seeded.export_job_id


def test_thumbnails_and_manifests_have_their_type(
    client: FlaskClient, seeded: SeededStatus
) -> None:
    project = client.get("/api/projects/summerTrip").get_json()
    assert _get(client, project["clips"][0]["thumbnailUrl"]).mimetype == "image/jpeg"
    manifest = _get(client, project["manifests"][0]["url"])
    assert manifest.mimetype == "text/plain"
    assert "Summer Trip" in _text(manifest)
    assert seeded.project_name


def test_files_refuse_everything_else(
    client: FlaskClient, seeded: SeededStatus, settings: Settings, tmp_path: Path
) -> None:
    project = settings.storage / "summerTrip"
    (project / "work" / "job1").mkdir(parents=True)
    (project / "work" / "job1" / "half.mp4").write_bytes(b"x")
    (settings.storage / "logs").mkdir()
    (settings.storage / "logs" / "vidgen.log").write_text("secret log")
    (settings.storage / "vidgen.db").write_text("database")
    (project / "clips" / ".partial.mp4.part").write_bytes(b"x")
    secret = tmp_path / "secret.txt"
    secret.write_text("secret")
    (project / "clips" / "link_out.mp4").symlink_to(secret)
    (project / "clips" / "link_work.mp4").symlink_to(project / "work" / "job1" / "half.mp4")
    (project / "refs" / "linked_dir").symlink_to(tmp_path)
    for path in [
        "/files/storage/summerTrip/work/job1/half.mp4",
        "/files/storage/logs/vidgen.log",
        "/files/storage/vidgen.db",
        "/files/storage/summerTrip/clips/.partial.mp4.part",
        "/files/storage/summerTrip/clips/link_out.mp4",
        "/files/storage/summerTrip/clips/link_work.mp4",
        "/files/storage/summerTrip/refs/linked_dir/secret.txt",
        "/files/storage/summerTrip/clips/../work/job1/half.mp4",
        "/files/storage/summerTrip/clips/%2e%2e/work/job1/half.mp4",
        "/files/storage/summerTrip/clips/%2E%2E/%2E%2E/vidgen.db",
        "/files/storage/summerTrip/clips/..%2F..%2Fvidgen.db",
        "/files/storage/%2Fetc%2Fpasswd",
        "/files//etc/passwd",
        "/files/etc/passwd",
        f"/files/storage{secret}",
        "/files/storage/summerTrip/clips",
        "/files/storage/summerTrip/clips/",
        "/files/storage/summerTrip",
        "/files/outbox/",
        "/files/outbox",
        "/files/",
        "/files/storage/summerTrip/clips/nothing.mp4",
    ]:
        response = client.get(path)
        assert response.status_code == 404, path
        assert b"secret" not in response.get_data()
        assert b"database" not in response.get_data()
    assert seeded.clip_ids


def test_unknown_file_types_download_instead_of_rendering(
    client: FlaskClient, settings: Settings
) -> None:
    (settings.outbox / "page.html").write_text("<script>alert(1)</script>")
    response = _get(client, "/files/outbox/page.html")
    assert response.mimetype == "application/octet-stream"
    assert response.headers["Content-Disposition"].startswith("attachment")


# --- health --------------------------------------------------------------------------------------


def test_health_is_200_while_comfyui_is_missing(client: FlaskClient) -> None:
    response = client.get("/health")
    body = response.get_json()
    assert response.status_code == 200
    assert body["database"] == {"ok": True}
    assert body["comfyui"][0]["url"] == "http://127.0.0.1:9"
    assert body["comfyui"][0]["reachable"] is False
    assert body["comfyui"][0]["error"]
    assert body["status"] == "degraded"
    assert body["ffmpeg"]["ok"] is True
    assert body["ffmpeg"]["version"]
    assert body["inboxes"][0] == {
        "name": "inbox",
        "readable": True,
        "writable": True,
        "ok": True,
        "freeBytes": body["inboxes"][0]["freeBytes"],
    }
    assert body["outboxes"][0]["freeBytes"] > 0
    assert body["storage"]["ok"] is True
    assert "/" not in json.dumps([body["inboxes"], body["outboxes"], body["storage"]])


def test_health_reports_a_running_comfyui(
    tmp_path: Path, database: Database, comfyui: ComfyUIDouble
) -> None:
    url = database.engine.url.render_as_string(hide_password=False)
    settings = make_settings(tmp_path, url, comfyui={"urls": [comfyui.url]})
    body = create_app(settings, database).test_client().get("/health").get_json()
    backend = body["comfyui"][0]
    assert backend["reachable"] is True
    assert backend["queueLength"] == 0
    assert backend["vramTotalBytes"] > 0
    assert backend["vramFreeBytes"] > 0
    assert body["status"] == "ok"


def test_health_uses_injected_probes(settings: Settings, database: Database) -> None:
    probe = BackendHealth("http://gpu:8188", True, 2, 1_000, 12_000)
    client = create_app(settings, database, backend_probes=[lambda: probe]).test_client()
    assert client.get("/health").get_json()["comfyui"] == [
        {
            "url": "http://gpu:8188",
            "reachable": True,
            "queueLength": 2,
            "vramFreeBytes": 1000,
            "vramTotalBytes": 12000,
            "error": None,
        }
    ]


def test_health_is_503_when_storage_is_gone(settings: Settings, database: Database) -> None:
    gone = replace(settings, storage=settings.storage / "missing")
    response = create_app(gone, database, backend_probes=[]).test_client().get("/health")
    assert response.status_code == 503
    assert response.get_json()["storage"]["ok"] is False


def test_every_page_says_when_an_inbox_is_unavailable(
    settings: Settings, database: Database
) -> None:
    share = settings.inboxes[0].path
    share.rmdir()  # the share went away
    app = create_app(settings, database, backend_probes=[])
    try:
        for path in ("/", "/projects", "/rejected"):
            page = _text(app.test_client().get(path))
            assert "is unavailable" in page
            assert f'<span class="mono">{share.name}</span>' in page
        share.mkdir()
        assert "is unavailable" not in _text(app.test_client().get("/"))
    finally:
        status_context(app).feed.stop()


# --- server-sent events ---------------------------------------------------------------------------


def _all_events(chunks: list[str]) -> list[tuple[str, dict[str, Any]]]:
    found = []
    for block in "".join(chunks).split("\n\n"):
        fields = dict(line.split(": ", 1) for line in block.splitlines() if ": " in line)
        if "event" in fields:
            found.append((fields["event"], json.loads(fields["data"])))
    return found


def _events(chunks: list[str]) -> list[tuple[str, dict[str, Any]]]:
    """The job events (progress, completed, error)."""
    return [(name, data) for name, data in _all_events(chunks) if name != "counts"]


def _counts(chunks: list[str]) -> list[dict[str, Any]]:
    return [data for name, data in _all_events(chunks) if name == "counts"]


def test_events_start_with_the_live_jobs_and_end_with_a_retry_hint(
    client: FlaskClient, seeded: SeededStatus
) -> None:
    response = client.get("/api/events")
    body = _text(response)
    assert response.mimetype == "text/event-stream"
    assert body.startswith("retry: ")
    assert body.rstrip().endswith(body.splitlines()[0])
    live = {data["id"] for _name, data in _events([body])}
    assert seeded.running_job_id in live
    assert seeded.waiting_job_id in live
    assert seeded.failed_job_id not in live
    counts = _counts([body])[0]  # before the jobs, for every status
    assert body.index("event: counts") < body.index("event: progress")
    assert counts["statusCounts"]["failed"] >= 1
    assert counts["live"] == len(live)
    assert counts["more"] is False


def _first_message(client: FlaskClient, **headers: str) -> str:
    response = client.get("/api/events", headers=headers, buffered=False)
    first = next(iter(cast(Iterable[bytes], response.response))).decode()
    response.close()
    return first


def test_the_first_message_is_bounded_whatever_the_number_of_live_jobs(
    client: FlaskClient, database: Database
) -> None:
    crowd = add_live_jobs(database, 2000)
    body = _first_message(client)
    jobs = _events([body])
    assert len(jobs) == SNAPSHOT_JOBS
    assert {data["id"] for _name, data in jobs} == set(crowd[-SNAPSHOT_JOBS:])  # changed last
    assert len(body.encode()) < SNAPSHOT_JOBS * 1024
    (counts,) = _counts([body])
    assert counts["statusCounts"] == {"queued": 2000}
    assert counts["live"] == 2000
    assert counts["more"] is True  # the page fetches the jobs it shows


def test_a_reconnect_after_many_changes_is_bounded_too(
    client: FlaskClient, database: Database
) -> None:
    since = event_id(datetime.now(UTC) - timedelta(minutes=5))
    add_live_jobs(database, 2000)
    body = _first_message(client, **{"Last-Event-ID": since})
    assert len(_events([body])) <= 2 * SNAPSHOT_JOBS
    assert _counts([body])[0]["more"] is True


def test_events_stream_a_progress_change_and_the_completion(
    settings: Settings, database: Database, seeded: SeededStatus
) -> None:
    app = create_app(
        replace(settings, status=replace(settings.status, sse_max_seconds=30)), database
    )
    response = app.test_client().get("/api/events", buffered=False)
    chunks = iter(cast(Iterable[bytes], response.response))
    received = [next(chunks).decode(), next(chunks).decode()]  # retry hint, snapshot
    worker = claim_next(database, "w1", RunsOn.COMFYUI, lease_seconds=60, max_attempts=5)
    assert worker is not None
    assert worker.id == seeded.waiting_job_id
    report_progress(database, worker.id, "w1", 55.0, "sampling: step 11 of 20")
    complete_generate(database, worker.id, "w1", placed_clip())
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        received.append(next(chunks).decode())
        kinds = [
            (name, data["progressPercent"])
            for name, data in _events(received)
            if data["id"] == worker.id
        ]
        if ("completed", 100.0) in kinds:
            break
    assert ("completed", 100.0) in kinds
    assert _counts(received[2:])[-1]["statusCounts"]["completed"] >= 1  # sent with the changes
    response.close()
    status_context(app).feed.stop()


def test_a_reconnecting_client_gets_what_it_missed(
    client: FlaskClient, database: Database, seeded: SeededStatus
) -> None:
    first = _text(client.get("/api/events"))
    last_id = [line for line in first.splitlines() if line.startswith("id: ")][-1][4:]
    worker = claim_next(database, "w1", RunsOn.COMFYUI, lease_seconds=60, max_attempts=5)
    assert worker is not None
    complete_generate(database, worker.id, "w1", placed_clip())
    again = _text(client.get("/api/events", headers={"Last-Event-ID": last_id}))
    assert ("completed", worker.id) in [(n, d["id"]) for n, d in _events([again])]
    assert seeded.running_job_id


def test_a_client_beyond_capacity_gets_a_retry_hint_and_nothing_else(
    serve_status: ServeStatus, seeded: SeededStatus
) -> None:
    base = serve_status(threads=5, sse_max_seconds=30)  # room for one stream
    port = int(base.rsplit(":", 1)[1])
    with socket.create_connection(("127.0.0.1", port), timeout=10) as first:
        first.sendall(b"GET /api/events HTTP/1.1\r\nHost: localhost\r\n\r\n")
        received = b""
        while b"event: counts" not in received:  # it streams: the one thread is taken
            received += first.recv(65536)
        second = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
        second.request("GET", "/api/events")
        answer = second.getresponse()
        assert answer.status == 200  # an EventSource gives up for good on any other status
        assert answer.getheader("Content-Type", "").startswith("text/event-stream")
        assert answer.read() == b"retry: 5000\n\n"  # come back in 5 s, and nothing else
        assert answer.getheader("Connection") == "close"  # no idle connection held for it
        second.close()
    assert seeded.running_job_id


def test_a_client_that_leaves_frees_its_stream(
    serve_status: ServeStatus, seeded: SeededStatus
) -> None:
    base = serve_status(sse_max_seconds=300)
    port = int(base.rsplit(":", 1)[1])
    before = _feed_threads()
    connection = socket.create_connection(("127.0.0.1", port))
    connection.sendall(b"GET /api/events HTTP/1.1\r\nHost: localhost\r\n\r\n")
    assert b"text/event-stream" in connection.recv(65536)
    assert _feed_threads() == before + 1
    connection.close()
    deadline = time.monotonic() + 20
    while _feed_threads() > before and time.monotonic() < deadline:
        time.sleep(0.1)
    assert _feed_threads() == before  # the stream ended, so the shared poller stopped too
    status = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
    status.request("GET", "/api/jobs")
    assert status.getresponse().status == 200
    status.close()
    assert seeded.running_job_id


def _feed_threads() -> int:
    return sum(1 for t in threading.enumerate() if t.name == "vidgen-status-feed")


def test_serve_refuses_a_port_in_use(settings: Settings, database: Database) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        busy = replace(settings, status=replace(settings.status, port=taken.getsockname()[1]))
        with pytest.raises(ConfigError, match="cannot listen"):
            serve(busy, database, threading.Event())


# --- SQLite, terminal ----------------------------------------------------------------------------


def test_pages_work_on_sqlite(
    tmp_path: Path, sqlite_database: Database, status_media: StatusMedia
) -> None:
    url = sqlite_database.engine.url.render_as_string(hide_password=False)
    settings = make_settings(tmp_path, url)
    seeded = seed_status_data(sqlite_database, settings, status_media)
    client = create_app(settings, sqlite_database, backend_probes=[]).test_client()
    assert FAILED_MESSAGE in _text(client.get("/"))
    assert KOREAN_PROMPT in _text(client.get("/projects/summerTrip"))
    assert client.get(f"/api/jobs/{seeded.running_job_id}").get_json()["progressPercent"] == 40


def test_terminal_view_prints_a_table(
    settings: Settings, database: Database, seeded: SeededStatus
) -> None:
    console = Console(file=StringIO(), width=160, color_system=None)
    print_jobs(settings, database, False, console)
    text = console.file.getvalue()  # type: ignore[attr-defined]
    assert "Summer Trip" in text
    assert "봄 여행" in text
    assert "active" in text
    assert "ran out of GPU memory" in text
    assert "sampling: step 8 of 20" in text
    assert seeded.running_job_id[:8] in text


def test_terminal_follow_redraws_until_stopped(
    settings: Settings, database: Database, seeded: SeededStatus
) -> None:
    console = Console(file=StringIO(), width=160, color_system=None, force_terminal=True)
    stop = threading.Event()
    follower = threading.Thread(
        target=print_jobs, args=(settings, database, True, console), kwargs={"stop_event": stop}
    )
    follower.start()
    report_progress(database, seeded.running_job_id, "gpu0@studio", 75.0, "decoding 16 frames")
    deadline = time.monotonic() + 10
    while "decoding 16 frames" not in console.file.getvalue() and time.monotonic() < deadline:  # type: ignore[attr-defined]
        time.sleep(0.1)
    stop.set()
    follower.join(timeout=5)
    assert "decoding 16 frames" in console.file.getvalue()  # type: ignore[attr-defined]
    assert not follower.is_alive()


# --- helpers -------------------------------------------------------------------------------------


def _many_jobs(database: Database, count: int, prompt: str = "fox", name: str = "many") -> None:
    with database.session() as session:
        project = Project(project_name=name, display_name=name, resolution="512x512", frame_rate=8)
        session.add(project)
        session.flush()
        clip = Clip(
            project_id=project.id,
            clip_name="clip1",
            order_index=0,
            generation_mode="textToVideo",
            prompt=prompt,
            settings_hash="0" * 64,
        )
        session.add(clip)
        session.flush()
        for _ in range(count):
            session.add(Job(project_id=project.id, job_type="generate", input_clip_ids=[clip.id]))
