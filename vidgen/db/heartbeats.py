"""A running part of vidgen saying it is alive: its ``service_status`` row, written by that part
alone (the status page reads it through ``vidgen.db.service_status``)."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import delete

from vidgen.db.models import ServiceStatus
from vidgen.db.session import Database
from vidgen.db.types import utcnow


def beat(
    database: Database,
    state_id: str,
    *,
    part: str,
    host: str,
    started_at: datetime,
    details: dict[str, Any],
) -> None:
    """Write (or make) the row of this running instance with the time now.

    Raises:
        DatabaseUnavailable: the database cannot be reached (the next beat tries again).
    """
    with database.session() as session:
        row = session.get(ServiceStatus, state_id)
        if row is None:
            row = ServiceStatus(id=state_id, part=part, host=host, started_at=started_at)
            session.add(row)
        row.seen_at = utcnow()
        row.details = details


def forget(database: Database, state_id: str) -> None:
    """Remove the row of an instance that stops cleanly: it is not a dead one."""
    with database.session() as session:
        session.execute(delete(ServiceStatus).where(ServiceStatus.id == state_id))


def forget_silent(database: Database, part: str, host: str, silent_for: timedelta) -> None:
    """Remove the rows an earlier, killed instance of ``part`` on ``host`` left behind."""
    with database.session() as session:
        session.execute(
            delete(ServiceStatus).where(
                ServiceStatus.part == part,
                ServiceStatus.host == host,
                ServiceStatus.seen_at < utcnow() - silent_for,
            )
        )
