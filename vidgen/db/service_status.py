"""Reading which parts of vidgen run where (the ``service_status`` rows) for ``/health``."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import select

from vidgen.db.models import ServiceStatus
from vidgen.db.session import Database

# A part that missed this many of its own beats is taken for dead.
SILENT_BEATS = 3


@dataclass(frozen=True, slots=True)
class ServiceState:
    part: str
    host: str
    started_at: datetime
    seen_at: datetime
    details: dict[str, Any]

    def silent_seconds(self, now: datetime) -> float:
        return max(0.0, (now - self.seen_at).total_seconds())

    def alive(self, now: datetime) -> bool:
        """Beating: heard from within ``SILENT_BEATS`` of its own heartbeat intervals."""
        interval = float(self.details.get("heartbeatSeconds") or 10.0)
        return self.silent_seconds(now) <= SILENT_BEATS * interval


def service_states(database: Database, part: str) -> list[ServiceState]:
    """Every recorded instance of ``part``, oldest first.

    Raises:
        DatabaseUnavailable: the database cannot be reached.
    """
    with database.session() as session:
        rows = session.scalars(
            select(ServiceStatus)
            .where(ServiceStatus.part == part)
            .order_by(ServiceStatus.started_at)
        )
        return [
            ServiceState(row.part, row.host, row.started_at, row.seen_at, dict(row.details))
            for row in rows
        ]
