"""The notification outbox: events written in the transaction of the change they are about, and
the deliveries the notifier makes of them, each claimed, tried and settled.

A job's end writes its event with the status change itself (``job_ended``, from
``vidgen.db.jobs.end_job``), so the event exists exactly when the change does. Events that
several processes may notice (a rejection redone after a crash, the queue running empty, an
attention episode) are stored once per key (``record_once``). The notifier then gives each event
one ``Delivery`` per configured target (``fan_out``) and works through the due ones
(``claim_due``, ``settle``); claims are a compare-and-set on the attempt count, behind
``SKIP LOCKED`` on MariaDB, so several notifiers never send one delivery at once.
"""

from __future__ import annotations

import logging
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import PurePath
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from vidgen.db.models import Delivery, Event, EventKind, Job, JobStatus, JobType, Project
from vidgen.db.session import Database
from vidgen.db.types import utcnow
from vidgen.errors import DatabaseUnavailable
from vidgen.specs import JobOutputs

log = logging.getLogger(__name__)

_BATCH = 50
_ERROR_CHARS = 2000


def event_payload(
    *,
    project_name: str | None = None,
    display_name: str | None = None,
    job_id: str | None = None,
    outputs: Sequence[str] = (),
    error: str | None = None,
) -> dict[str, Any]:
    """What an event says, in the words of the webhook's JSON (its ``statusUrl`` is added when
    it is sent: the status page's address is the sender's setting)."""
    return {
        "projectName": project_name,
        "displayName": display_name,
        "jobId": job_id,
        "outputs": list(outputs),
        "error": error[:_ERROR_CHARS] if error else None,
    }


def job_ended(session: Session, job: Job, status: JobStatus) -> None:
    """The event a job's end causes, in its transaction: an export delivered, or any job that
    failed for good. Cancelled jobs and finished clips notify nobody."""
    if status == JobStatus.FAILED:
        kind = EventKind.FAILED
    elif status == JobStatus.COMPLETED and job.job_type == JobType.EXPORT:
        kind = EventKind.COMPLETED
    else:
        return
    project = session.get(Project, job.project_id)
    made = JobOutputs.from_json(job.job_outputs)
    sheets = [f for sheet in made.sheets for f in (sheet, str(PurePath(sheet).with_suffix(".png")))]
    files = [p for p in (job.output_path, made.recipe, *sheets) if p]
    payload = event_payload(
        project_name=project.project_name if project else None,
        display_name=project.display_name if project else None,
        job_id=job.id,
        outputs=[PurePath(str(p)).name for p in files] if kind is EventKind.COMPLETED else [],
        error=job.error_message if kind is EventKind.FAILED else None,
    )
    session.add(Event(kind=kind, project_id=job.project_id, job_id=job.id, payload=payload))


def record_once(database: Database, kind: EventKind, key: str, payload: Mapping[str, Any]) -> bool:
    """Store an event under ``key`` unless one is stored already; True if this call stored it."""
    try:
        with database.session() as session:
            session.add(Event(kind=kind, dedup_key=key[:255], payload=dict(payload)))
    except IntegrityError:
        return False
    return True


def record_rejection(database: Database, manifest_id: str, file_name: str, error: str) -> None:
    """A rejected manifest's event: once per manifest, also when intake redoes a rejection a
    crash interrupted. With the database away the rejection goes on, and only this is lost."""
    payload = event_payload(display_name=file_name, error=error)
    try:
        record_once(database, EventKind.REJECTED, f"rejected:{manifest_id}", payload)
    except DatabaseUnavailable as exc:
        log.warning("the rejection of %s is not notified: %s", file_name, exc.user_message)


def close_episode(database: Database, key: str) -> None:
    """The episode stored under ``key`` is over: its key is renamed, freeing it for the next."""
    with database.session() as session:
        event = session.scalars(select(Event).where(Event.dedup_key == key)).one_or_none()
        if event is not None:
            event.dedup_key = f"{key}:closed:{event.id}"[:255]


def episode_open(database: Database, key: str) -> bool:
    with database.session() as session:
        return session.scalars(select(Event.id).where(Event.dedup_key == key)).first() is not None


def fan_out(
    database: Database, routes: Mapping[str, Sequence[str]], *, stale_before: datetime
) -> int:
    """Give each new event a delivery per target whose events include its kind (``routes``:
    kind → target keys); an event older than ``stale_before`` gets none (notifications of
    yesterday's jobs, found by a notifier started today, would only mislead). Returns how many
    deliveries were made."""
    made = 0
    now = utcnow()
    with database.session() as session:
        query = select(Event).where(Event.fanned_out_at.is_(None)).order_by(Event.id).limit(_BATCH)
        if database.is_mysql:
            query = query.with_for_update(skip_locked=True)
        for event in session.scalars(query).all():
            taken = session.execute(
                update(Event)
                .where(Event.id == event.id, Event.fanned_out_at.is_(None))
                .values(fanned_out_at=now)
            )
            if taken.rowcount != 1 or event.created_at < stale_before:  # type: ignore[attr-defined]
                continue
            for target in routes.get(event.kind, ()):
                session.add(Delivery(event_id=event.id, target=target, next_try_at=now))
                made += 1
    return made


def drained_after(database: Database) -> tuple[str, datetime] | None:
    """While no job is queued or active: the job that ended last and when, which names this
    empty queue (``queueEmpty:<id>``); None while work remains, or before any job ended."""
    with database.session() as session:
        live = session.scalars(
            select(Job.id).where(Job.job_status.in_([JobStatus.QUEUED, JobStatus.ACTIVE])).limit(1)
        ).first()
        if live is not None:
            return None
        # With nothing live, the job updated last is the one that ended last (ix_job_updated).
        last = session.execute(
            select(Job.id, Job.updated_at).order_by(Job.updated_at.desc(), Job.id.desc()).limit(1)
        ).first()
        return None if last is None else (last[0], last[1])


@dataclass(frozen=True, slots=True)
class DueDelivery:
    """A delivery this notifier has claimed, with its event."""

    id: int
    target: str
    attempt: int  # this try's number, 1 for the first
    kind: str
    payload: dict[str, Any]
    created_at: datetime


def claim_due(
    database: Database, targets: Collection[str], *, lease_seconds: float, limit: int = _BATCH
) -> list[DueDelivery]:
    """Take the due deliveries to these targets for one try each; a claim holds a delivery for
    ``lease_seconds`` (a notifier that dies mid-try leaves it due again after that)."""
    if not targets:
        return []
    now = utcnow()
    claimed: list[DueDelivery] = []
    with database.session() as session:
        query = (
            select(Delivery, Event)
            .join(Event, Delivery.event_id == Event.id)
            .where(
                Delivery.delivered_at.is_(None),
                Delivery.next_try_at.is_not(None),
                Delivery.next_try_at <= now,
                Delivery.target.in_(list(targets)),
            )
            .order_by(Delivery.id)
            .limit(limit)
        )
        if database.is_mysql:
            query = query.with_for_update(skip_locked=True, of=Delivery)
        for delivery, event in session.execute(query).all():
            tried = delivery.attempts  # read first: the update below refreshes the object
            taken = session.execute(
                update(Delivery)
                .where(Delivery.id == delivery.id, Delivery.attempts == tried)
                .values(attempts=tried + 1, next_try_at=now + timedelta(seconds=lease_seconds))
            )
            if taken.rowcount == 1:  # type: ignore[attr-defined]
                claimed.append(
                    DueDelivery(
                        delivery.id,
                        delivery.target,
                        tried + 1,
                        event.kind,
                        dict(event.payload),
                        event.created_at,
                    )
                )
    return claimed


def settle(
    database: Database, due: DueDelivery, error: str | None, *, retry_in: float | None
) -> None:
    """Record a try: delivered (``error`` None), or failed and due again in ``retry_in``
    seconds (None: given up). A claim another notifier took over since is left alone."""
    now = utcnow()
    if error is None:
        values: dict[str, Any] = {"delivered_at": now, "next_try_at": None, "last_error": None}
    else:
        later = None if retry_in is None else now + timedelta(seconds=retry_in)
        values = {"next_try_at": later, "last_error": error[:_ERROR_CHARS]}
    with database.session() as session:
        session.execute(
            update(Delivery)
            .where(Delivery.id == due.id, Delivery.attempts == due.attempt)
            .values(**values)
        )


__all__ = [
    "DueDelivery",
    "claim_due",
    "close_episode",
    "drained_after",
    "episode_open",
    "event_payload",
    "fan_out",
    "job_ended",
    "record_once",
    "record_rejection",
    "settle",
]
