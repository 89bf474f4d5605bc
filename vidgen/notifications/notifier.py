"""The notifier: a thread of its own in `vidgen run` and `vidgen work` that turns the outbox's
events into deliveries and sends them, tried again with growing pauses until delivered or given
up after ``notifications.maxAttempts``. A failure is logged and shown on ``/health``; a target
that does not answer delays only other notifications, never a worker.

Several processes may run one: each claims a delivery before it sends it (``outbox.claim_due``).
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass

from vidgen.config import Settings
from vidgen.db import outbox
from vidgen.db.session import Database
from vidgen.db.types import utcnow
from vidgen.errors import NotificationError, VidgenError
from vidgen.notifications.messages import apprise_text, status_base, webhook_body
from vidgen.notifications.monitor import STALE, Monitor
from vidgen.notifications.send import post_webhook, send_apprise
from vidgen.notifications.targets import Target, TargetKind, routes, targets_of

log = logging.getLogger(__name__)

# A try may wait ``timeoutSeconds`` to connect, to send and to read; the claim outlasts that.
_LEASE_TIMEOUTS = 4
_LEASE_MARGIN_SECONDS = 10.0


def send(settings: Settings, target: Target, kind: str, payload: Mapping[str, object]) -> None:
    """One message to one target, now.

    Raises:
        NotificationError: the target did not take it.
    """
    base = status_base(settings)
    if target.kind is TargetKind.WEBHOOK:
        body = webhook_body(kind, payload, base)
        post_webhook(target.url, body, settings.notifications.timeout_seconds, target.where)
    else:
        send_apprise(target.url, *apprise_text(kind, payload, base))


@dataclass(frozen=True, slots=True)
class TestResult:
    target: Target
    error: str | None  # None: delivered


def send_test(settings: Settings) -> list[TestResult]:
    """`vidgen notify --test`: a test message to every target, straight away (not stored)."""
    results = []
    payload = outbox.event_payload(display_name="vidgen")
    for target in targets_of(settings.notifications):
        try:
            send(settings, target, "test", payload)
        except NotificationError as exc:
            results.append(TestResult(target, exc.user_message))
        else:
            results.append(TestResult(target, None))
    return results


class Notifier:
    """Runs ``round`` every ``notifications.pollSeconds`` until stopped."""

    def __init__(
        self,
        settings: Settings,
        database: Database,
        backends: Mapping[str, Callable[[], bool]] | None = None,
    ) -> None:
        self._settings = settings
        self._database = database
        self._targets = {t.key: t for t in targets_of(settings.notifications)}
        self._routes = routes(tuple(self._targets.values()))
        wanted = frozenset(self._routes)
        self._monitor = Monitor(settings, database, backends or {}, wanted)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="notifier", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self, timeout: float = 2.0) -> None:
        """Stop; a try still waiting on a slow target is left behind (the thread is a daemon),
        so vidgen stops within seconds. Its claim lapses, and the next start tries again."""
        self._stop.set()
        self._thread.join(timeout)

    def _loop(self) -> None:
        while not self._stop.wait(self._settings.notifications.poll_seconds):
            try:
                self.round()
            except VidgenError as exc:  # the database restarting, say: the next round retries
                log.warning("notifications: %s", exc.user_message)
            except Exception:  # this thread's one catch-all: notifications must go on
                log.exception("notifications: unexpected error; trying again next round")

    def round(self) -> None:
        """Notice what happened, give new events their deliveries, send what is due."""
        self._monitor.check()
        outbox.fan_out(self._database, self._routes, stale_before=utcnow() - STALE)
        timeout = self._settings.notifications.timeout_seconds
        lease = timeout * _LEASE_TIMEOUTS + _LEASE_MARGIN_SECONDS
        while not self._stop.is_set():
            # One at a time: a claim's lease covers one try, however slow the targets before it.
            due = outbox.claim_due(self._database, self._targets, lease_seconds=lease, limit=1)
            if not due:
                return
            self._deliver(due[0])

    def _deliver(self, due: outbox.DueDelivery) -> None:
        target = self._targets[due.target]
        try:
            send(self._settings, target, due.kind, due.payload)
        except NotificationError as exc:
            retry_in = self._retry_in(due.attempt)
            outbox.settle(self._database, due, exc.user_message, retry_in=retry_in)
            later = "given up" if retry_in is None else f"next try in {retry_in:.0f} s"
            log.warning(
                "notification %s to %s (%s) failed (try %d: %s); %s",
                due.kind, target.name, target.where, due.attempt, exc.user_message, later,
            )  # fmt: skip
            return
        outbox.settle(self._database, due, None, retry_in=None)
        log.info("notified %s (%s) of %s", target.name, target.where, due.kind)

    def _retry_in(self, attempt: int) -> float | None:
        config = self._settings.notifications
        if attempt >= config.max_attempts:
            return None
        delay = config.retry_seconds * 2 ** (attempt - 1)
        return float(min(delay, config.retry_max_seconds))


__all__ = ["Notifier", "TestResult", "send", "send_test"]
