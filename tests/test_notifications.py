"""Notifications: each event reaches each target once per occurrence, also across a restart of
vidgen between the event and its delivery; a target that does not answer is retried, shown on
/health, and holds up no worker; Apprise through its own json:// scheme; attention episodes."""

from __future__ import annotations

import shutil
import subprocess
import sys
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from tests.comfyui_double import ComfyUIDouble
from tests.fixtures.database import make_settings, write_config
from tests.fixtures.media import MakeClip
from tests.fixtures.pipeline import job_ended, queue_export, ready_clips, wait_for
from tests.fixtures.receiver import BlackHole, WebhookReceiver, free_port
from vidgen.config import EVENT_KINDS, Settings
from vidgen.db.models import Delivery, Event, EventKind
from vidgen.db.session import Database
from vidgen.notifications.monitor import Monitor
from vidgen.runtime import Services
from vidgen.specs import ExportSpec

VIDGEN = str(Path(sys.executable).with_name("vidgen"))
QUICK = {
    "pollSeconds": 0.2,
    "retrySeconds": 0.2,
    "retryMaxSeconds": 0.5,
    "timeoutSeconds": 2.0,
    "maxAttempts": 1000,
}


def _events(database: Database) -> list[Event]:
    with database.session() as session:
        return list(session.query(Event).order_by(Event.id))


def _deliveries(database: Database) -> list[Delivery]:
    with database.session() as session:
        return list(session.query(Delivery).order_by(Delivery.id))


def test_the_event_kinds_of_config_and_database_agree() -> None:
    assert set(EVENT_KINDS) == {kind.value for kind in EventKind}


@pytest.mark.slow
def test_each_event_is_delivered_once_also_after_a_restart_before_delivery(
    comfyui: ComfyUIDouble,
    database: Database,
    tmp_path: Path,
    make_clip: MakeClip,
    processes: list[subprocess.Popen[bytes]],
) -> None:
    port = free_port()  # the receiver is down until vidgen has been killed
    hook = f"http://127.0.0.1:{port}/hook"
    overrides: dict[str, Any] = {
        "comfyui": {"urls": [comfyui.url]},
        "status": {"port": free_port()},
        "notifications": {
            **QUICK,
            "webhooks": [
                {"url": hook, "events": ["completed", "failed", "rejected", "queueEmpty"]}
            ],
            "apprise": [{"url": f"json://127.0.0.1:{port}/apprise", "events": ["completed"]}],
        },
    }
    url = database.engine.url.render_as_string(hide_password=False)
    config = write_config(tmp_path, url, **overrides)
    inbox = make_settings(tmp_path, url, **overrides).inboxes[0].path
    comfyui.fail_at("KSampler", "out of cheese", times=None)

    def run() -> subprocess.Popen[bytes]:
        command = [VIDGEN, "--config", str(config), "run"]
        process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        processes.append(process)
        return process

    first = run()
    shutil.copy(make_clip(64, 64, 8, 1.0), inbox / "intro.mp4")
    (inbox / "trip.yaml").write_text("project: Trip\nvideo: intro.mp4\n", encoding="utf-8")
    (inbox / "rain.yaml").write_text(
        "project: Rain\nresolution: 64x64\nprompt: rain\nframes: 8\nsteps: 2\nseed: 3\n",
        encoding="utf-8",
    )
    (inbox / "typo.yaml").write_text("promt: a fox\n", encoding="utf-8")
    expected = Counter({"completed": 1, "failed": 2, "rejected": 1, "queueEmpty": 1})

    def all_tried_and_failed() -> bool:
        kinds = Counter(e.kind for e in _events(database))
        deliveries = _deliveries(database)
        return (
            kinds == expected
            and len(deliveries) == 6  # each event to the webhook, the completed one to Apprise
            and all(d.attempts >= 1 and d.delivered_at is None for d in deliveries)
        )

    wait_for(all_tried_and_failed, timeout=120, what="every event tried while the receiver is down")
    first.kill()  # after the events, before any delivery
    first.wait(timeout=10)
    receiver = WebhookReceiver(port).start()
    try:
        run()
        wait_for(
            lambda: all(d.delivered_at for d in _deliveries(database)),
            timeout=90,
            what="every delivery after the restart",
        )
        hooks = receiver.bodies("/hook")
        assert Counter(body["event"] for body in hooks) == expected
        jobs = [body["jobId"] for body in hooks if body["jobId"]]
        assert len(jobs) == len(set(jobs)) == 3  # one completed, two failed: each job once
        (completed,) = [body for body in hooks if body["event"] == "completed"]
        assert completed["projectName"] == "trip"
        assert completed["outputs"][0].endswith("_trip_export_001.mp4")
        assert completed["statusUrl"].endswith(f"/jobs/{completed['jobId']}")
        (rejected,) = [body for body in hooks if body["event"] == "rejected"]
        assert rejected["displayName"] == "typo.yaml"
        assert "promt" in rejected["error"]
        failed = [body for body in hooks if body["event"] == "failed"]
        assert all("out of cheese" in body["error"] or "rain" in body["error"] for body in failed)
        (apprised,) = receiver.bodies("/apprise")
        assert apprised["title"] == "Trip: finished"
        assert "_trip_export_001.mp4" in apprised["message"]
    finally:
        receiver.stop()


def test_a_hook_that_never_answers_holds_up_no_worker(
    database: Database,
    tmp_path: Path,
    clips: list[Path],
    running: Callable[[Settings], Services],
    black_hole: BlackHole,  # after running: closed first at teardown, which ends the try
) -> None:
    url = database.engine.url.render_as_string(hide_password=False)
    hole = {"url": black_hole.url, "events": ["completed"]}
    notifications = {**QUICK, "timeoutSeconds": 120.0, "webhooks": [hole]}
    settings = make_settings(tmp_path, url, notifications=notifications)
    running(settings)
    first = queue_export(database, ready_clips(database, clips[:1]), ExportSpec(), settings.outbox)
    wait_for(job_ended(database, first), what="the first export")
    wait_for(lambda: black_hole.held, what="the notifier's try of the first export's event")
    second = queue_export(
        database, ready_clips(database, clips[1:2], "another"), ExportSpec(), settings.outbox
    )
    ended = wait_for(job_ended(database, second), what="the second export")
    assert ended.job_status == "completed"
    # The first try is still waiting for its answer: the worker went on without it.
    (first_try,) = [d for d in _deliveries(database) if d.attempts == 1]
    assert first_try.delivered_at is None
    assert len(black_hole.held) == 1


def test_a_refused_hook_is_retried_and_shown_failing_on_health(
    database: Database,
    tmp_path: Path,
    clips: list[Path],
    running: Callable[[Settings], Services],
) -> None:
    from status import create_app

    url = database.engine.url.render_as_string(hide_password=False)
    refused = f"http://127.0.0.1:{free_port()}/hook"
    settings = make_settings(
        tmp_path,
        url,
        notifications={**QUICK, "webhooks": [{"url": refused, "events": ["completed"]}]},
    )
    running(settings)
    export = queue_export(database, ready_clips(database, clips[:1]), ExportSpec(), settings.outbox)
    wait_for(job_ended(database, export), what="the export")
    wait_for(
        lambda: any(d.attempts >= 3 for d in _deliveries(database)),
        what="the delivery tried again and again",
    )
    (delivery,) = _deliveries(database)
    assert delivery.delivered_at is None
    assert "cannot reach http://127.0.0.1" in (delivery.last_error or "")
    client = create_app(settings, database, backend_probes=[]).test_client()
    answer = client.get("/health")
    assert answer.status_code == 200
    (target,) = answer.get_json()["notifications"]
    assert target["target"] == "webhooks[0]"
    assert target["ok"] is False
    assert target["waiting"] == 1
    assert "cannot reach" in target["lastError"]
    assert "/hook" not in str(target)  # a URL's path may hold a token: only its host is shown


def test_notify_test_sends_through_apprise_json_and_webhooks_one_line_each(
    database: Database, tmp_path: Path, receiver: WebhookReceiver
) -> None:
    url = database.engine.url.render_as_string(hide_password=False)
    notifications = {
        **QUICK,
        "webhooks": [{"url": receiver.url("/hook")}, {"url": f"http://127.0.0.1:{free_port()}/x"}],
        "apprise": [{"url": receiver.url("/apprise", scheme="json")}],
    }
    config = write_config(tmp_path, url, notifications=notifications)
    done = subprocess.run(
        [VIDGEN, "--config", str(config), "notify", "--test"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    lines = done.stdout.splitlines()
    assert done.returncode == 1, done.stdout + done.stderr  # one target failed
    assert len(lines) == 3
    assert lines[0] == f"webhooks[0] http://127.0.0.1:{receiver.port}: ok"
    assert lines[1].startswith("webhooks[1] http://127.0.0.1:")
    assert ": failed: cannot reach" in lines[1]
    assert lines[2] == "apprise[0] json://…: ok"
    (hook,) = receiver.bodies("/hook")
    assert hook["event"] == "test"
    assert set(hook) == {
        "event",
        "projectName",
        "displayName",
        "jobId",
        "outputs",
        "error",
        "statusUrl",
    }
    (apprised,) = receiver.bodies("/apprise")
    assert apprised["title"] == "vidgen: test"


def test_attention_is_stored_once_per_episode_however_many_watch(
    database: Database, tmp_path: Path
) -> None:
    url = database.engine.url.render_as_string(hide_password=False)
    settings = make_settings(
        tmp_path, url, notifications={"attentionAfterSeconds": 10.0}, minFreeBytes=0
    )
    backend = {"up": False}
    now = [0.0]
    watchers = [
        Monitor(
            settings,
            database,
            {"http://gpu1:8188": lambda: backend["up"]},
            frozenset({EventKind.ATTENTION}),
            clock=lambda: now[0],
        )
        for _ in range(2)  # two processes watching the same backend
    ]

    def observe(at: float, up: bool) -> list[str]:
        now[0], backend["up"] = at, up
        for watcher in watchers:
            watcher.check()
        return [e.payload["error"] for e in _events(database) if e.kind == "attention"]

    assert observe(0.0, up=False) == []
    assert observe(9.0, up=False) == []  # not long enough yet
    (first,) = observe(11.0, up=False)
    assert first.startswith("ComfyUI at http://gpu1:8188 does not answer (for 11 s)")
    assert len(observe(500.0, up=False)) == 1  # the same episode
    assert len(observe(501.0, up=True)) == 1  # over
    assert len(observe(502.0, up=False)) == 1  # a new one begins, not long enough yet
    assert len(observe(513.0, up=False)) == 2  # the second episode, once
