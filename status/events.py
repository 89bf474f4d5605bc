"""``GET /api/events``: Server-Sent Events for every job change (``progress``, ``completed``,
``error``), fed by one poller thread shared by all clients.

The poller reads the jobs whose ``updatedAt`` moved (index ``ix_job_updated``) every
``POLL_SECONDS`` while at least one client listens, and stops when the last one leaves. Each poll
looks ``OVERLAP_SECONDS`` back, because a transaction can commit after a later one whose
timestamp the cursor has already passed; what was already sent is dropped by (id, updatedAt).
A client first gets one bounded message, whatever the number of jobs: a ``counts`` event (jobs
per status, how many are live, whether there are more live jobs than it carries) and at most
``SNAPSHOT_JOBS`` live jobs, the most recently changed, plus at most as many that changed since
its ``Last-Event-ID`` when it reconnects; the page fetches the jobs it shows from ``/api/``
when that is not all of them. A ``counts`` event follows every poll that found changes. Every
stream ends after ``status.sseMaxSeconds`` with a ``retry:`` hint, so no server thread is held
forever, and a client beyond the streams the server has threads for gets that hint alone.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from flask import Blueprint, Response, request

from status.context import status_context
from status.serialize import job_json
from vidgen.db.models import JobStatus
from vidgen.db.queries import (
    JobSummary,
    changes_since,
    latest_job_update,
    list_live_jobs,
    status_counts,
)
from vidgen.db.session import Database
from vidgen.errors import VidgenError

log = logging.getLogger(__name__)

bp = Blueprint("events", __name__)

POLL_SECONDS = 0.25
OVERLAP_SECONDS = 5.0
BATCH = 500
IDLE_STOP_SECONDS = 5.0  # the poller lingers this long after the last client, for reconnects
HEARTBEAT_SECONDS = 10.0
WAKE_SECONDS = 1.0  # how often a stream checks whether its client is still there
MAX_QUEUED = 2000  # a client this far behind is told to reconnect and start afresh
RETRY_MS = 2000
BUSY_RETRY_MS = 5000  # a client turned away for lack of threads polls this slowly
CATCH_UP_SECONDS = 600  # a Last-Event-ID older than this is ignored: the snapshot must do
RESERVED_THREADS = 4  # server threads kept free of streams, for pages and the API
HEADERS = {"Cache-Control": "no-cache", "X-Accel-Buffering": "no"}
MAX_EVENT_ID_DIGITS = 20  # microseconds since 1970 need 16 digits until the year 2286
# Jobs in a client's first message (live ones, and as many missed ones on a reconnect): one page
# of the jobs list, so 200 clients arriving at once cost 200 small reads, never 200 copies of
# every live job.
SNAPSHOT_JOBS = 50


def event_name(job: JobSummary) -> str:
    if job.job_status == JobStatus.COMPLETED:
        return "completed"
    if job.job_status in (JobStatus.FAILED, JobStatus.CANCELLED):
        return "error"
    return "progress"


def event_id(moment: datetime) -> str:
    """Microseconds since the epoch: what the browser sends back as ``Last-Event-ID``."""
    return str(int(moment.timestamp() * 1_000_000))


def _data(value: object) -> str:
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"))


def format_event(job: JobSummary) -> str:
    data = _data(job_json(job))
    return f"event: {event_name(job)}\nid: {event_id(job.updated_at)}\ndata: {data}\n\n"


@dataclass(frozen=True, slots=True)
class Snapshot:
    """What a new client is sent first: the counts and a bounded set of jobs."""

    jobs: list[JobSummary]
    counts: dict[str, int]
    live_total: int
    more: bool  # jobs the client may show were left out: it fetches them


def format_counts(counts: dict[str, int], live_total: int, more: bool = False) -> str:
    """A ``counts`` event; it has no ``id``, so the client's ``Last-Event-ID`` stays a job's."""
    data = {
        "statusCounts": counts,
        "total": sum(counts.values()),
        "live": live_total,
        "more": more,
    }
    return f"event: counts\ndata: {_data(data)}\n\n"


def _live_total(counts: dict[str, int]) -> int:
    return counts.get(JobStatus.QUEUED, 0) + counts.get(JobStatus.ACTIVE, 0)


class Subscription:
    """One client's queue of formatted events."""

    def __init__(self) -> None:
        self._events: deque[str] = deque()
        self._ready = threading.Condition()
        self.ended = False

    def put(self, events: list[str]) -> None:
        with self._ready:
            self._events.extend(events)
            if len(self._events) > MAX_QUEUED:
                self._events.clear()
                self.ended = True
            self._ready.notify()

    def end(self) -> None:
        with self._ready:
            self.ended = True
            self._ready.notify()

    def take(self, timeout_s: float) -> list[str]:
        """The events waiting, after at most ``timeout_s`` seconds of waiting for some."""
        with self._ready:
            if not self._events and not self.ended:
                self._ready.wait(timeout_s)
            events = list(self._events)
            self._events.clear()
            return events


class ChangeFeed:
    """The one poller of job changes, fanned out to every subscribed SSE client."""

    def __init__(self, database: Database, poll_seconds: float = POLL_SECONDS) -> None:
        self._database = database
        self._poll_seconds = poll_seconds
        self._lock = threading.Lock()
        self._subscribers: set[Subscription] = set()
        self._thread: threading.Thread | None = None
        self._stopped = threading.Event()
        self._cursor: datetime | None = None
        self._sent: dict[str, datetime] = {}

    @property
    def subscriber_count(self) -> int:
        with self._lock:
            return len(self._subscribers)

    @property
    def running(self) -> bool:
        with self._lock:
            return self._thread is not None

    def subscribe(self, limit: int | None = None) -> Subscription | None:
        """A new subscription, or None when ``limit`` clients are subscribed already."""
        subscription = Subscription()
        with self._lock:
            if self._stopped.is_set():
                subscription.ended = True
                return subscription
            if limit is not None and len(self._subscribers) >= limit:
                return None
            self._subscribers.add(subscription)
            if self._thread is None:
                self._thread = threading.Thread(
                    target=self._run, name="vidgen-status-feed", daemon=True
                )
                self._thread.start()
        return subscription

    def unsubscribe(self, subscription: Subscription) -> None:
        with self._lock:
            self._subscribers.discard(subscription)

    def stop(self) -> None:
        """End every stream and the poller (at shutdown)."""
        self._stopped.set()
        with self._lock:
            subscribers, thread = list(self._subscribers), self._thread
        for subscription in subscribers:
            subscription.end()
        if thread is not None and thread is not threading.current_thread():
            thread.join(timeout=5)

    def _run(self) -> None:
        idle_since: float | None = None
        while not self._stopped.wait(self._poll_seconds):
            with self._lock:
                subscribers = list(self._subscribers)
                if not subscribers:
                    idle_since = idle_since or time.monotonic()
                    if time.monotonic() - idle_since >= IDLE_STOP_SECONDS:
                        self._thread = None
                        self._reset()
                        return
                    continue
            idle_since = None
            self._poll_once(subscribers)
        with self._lock:
            self._thread = None

    def _reset(self) -> None:
        """Forget the cursor when the poller stops: a later start begins at the present."""
        self._cursor = None
        self._sent = {}

    def _poll_once(self, subscribers: list[Subscription]) -> None:
        try:
            events = [format_event(job) for job in self._fresh_changes()]
            if events:
                counts = status_counts(self._database)
                events.append(format_counts(counts, _live_total(counts)))
        except VidgenError as exc:
            # The database is away: streams stay open and catch up when it is back.
            log.warning("status page: cannot read job changes: %s", exc.user_message)
            return
        if events:
            for subscription in subscribers:
                subscription.put(events)

    def _fresh_changes(self) -> list[JobSummary]:
        if self._cursor is None:
            # Start at the newest change; looking back OVERLAP_SECONDS from there also covers
            # what was written while the first client read its snapshot.
            self._cursor = latest_job_update(self._database) or datetime.now(UTC)
        since = self._cursor - timedelta(seconds=OVERLAP_SECONDS)
        rows = changes_since(self._database, since, BATCH)
        if len(rows) == BATCH:
            # A burst (an intake of many jobs at once): read on from the last row instead of
            # looking back, or the same first BATCH rows would be read again and again.
            rows = changes_since(self._database, self._cursor, BATCH)
        fresh = [job for job in rows if self._sent.get(job.id) != job.updated_at]
        for job in fresh:
            self._sent[job.id] = job.updated_at
        if rows:
            self._cursor = max(self._cursor, rows[-1].updated_at)
        horizon = self._cursor - timedelta(seconds=OVERLAP_SECONDS)
        self._sent = {k: v for k, v in self._sent.items() if v >= horizon}
        return fresh


def _since_last_event(value: str | None) -> datetime | None:
    """The time a ``Last-Event-ID`` names (microseconds since the epoch, as ``event_id``
    writes it), or None for anything else: a client may send any header at all."""
    if not value or len(value) > MAX_EVENT_ID_DIGITS or not (value.isascii() and value.isdigit()):
        return None
    try:
        moment = datetime.fromtimestamp(int(value) / 1_000_000, UTC)
    except (OverflowError, OSError, ValueError):  # beyond the years a datetime can hold
        return None
    if datetime.now(UTC) - moment > timedelta(seconds=CATCH_UP_SECONDS):
        return None
    return moment


def initial_state(database: Database, last_event_id: str | None) -> Snapshot:
    """The most recently changed live jobs, and on a reconnect what changed since the last
    event the client saw, each at most ``SNAPSHOT_JOBS``; with the counts per status."""
    live = list_live_jobs(database, SNAPSHOT_JOBS)
    jobs = {job.id: job for job in live.jobs}
    more = live.live_total > len(live.jobs)
    since = _since_last_event(last_event_id)
    if since is not None:
        missed = changes_since(database, since, SNAPSHOT_JOBS + 1)
        more = more or len(missed) > SNAPSHOT_JOBS
        for job in missed[:SNAPSHOT_JOBS]:
            jobs.setdefault(job.id, job)
    ordered = sorted(jobs.values(), key=lambda job: job.updated_at)
    return Snapshot(ordered, live.status_counts, live.live_total, more)


def stream(
    subscription: Subscription,
    snapshot: Snapshot,
    max_seconds: float,
    disconnected: Callable[[], bool],
) -> Iterator[str]:
    """The body of one SSE response: the snapshot, then live events until the deadline."""
    yield (
        f"retry: {RETRY_MS}\n\n"
        + format_counts(snapshot.counts, snapshot.live_total, snapshot.more)
        + "".join(format_event(job) for job in snapshot.jobs)
    )
    deadline = time.monotonic() + max_seconds
    last_write = time.monotonic()
    while not subscription.ended and not disconnected():
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            break
        events = subscription.take(min(WAKE_SECONDS, remaining))
        if events:
            yield "".join(events)
            last_write = time.monotonic()
        elif time.monotonic() - last_write >= HEARTBEAT_SECONDS:
            yield ": keep-alive\n\n"
            last_write = time.monotonic()
    yield f"retry: {RETRY_MS}\n\n"


@bp.get("/api/events")
def events() -> Response:
    context = status_context()
    feed, settings = context.feed, context.settings
    # Subscribe before reading the snapshot, so nothing written in between is lost. When every
    # server thread but a few streams already, the client is told to come back later (a slow
    # poll) and nothing else: no database read, so the pages stay fast for everyone.
    subscription = feed.subscribe(limit=max(1, settings.status.threads - RESERVED_THREADS))
    if subscription is None:
        # A body of unknown length, so waitress closes the connection after it rather than keep
        # it alive: 200 pages waiting to come back must not hold 200 idle connections, which
        # would fill waitress's connection limit (100) and lock every page out.
        busy = iter([f"retry: {BUSY_RETRY_MS}\n\n"])
        return Response(busy, mimetype="text/event-stream", headers=HEADERS)
    try:
        snapshot = initial_state(context.database, request.headers.get("Last-Event-ID"))
    except BaseException:
        feed.unsubscribe(subscription)
        raise
    # waitress tells whether the client is gone (with channel_request_lookahead > 0, see
    # server.py); other servers only find out when a write fails.
    disconnected = request.environ.get("waitress.client_disconnected") or (lambda: False)
    response = Response(
        stream(subscription, snapshot, settings.status.sse_max_seconds, disconnected),
        mimetype="text/event-stream",
        headers=HEADERS,
    )
    # Called whether or not the body was read (a HEAD request never reads it).
    response.call_on_close(lambda: feed.unsubscribe(subscription))
    return response
