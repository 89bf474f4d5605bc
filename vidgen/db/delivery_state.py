"""How each notification target is doing, read for ``/health``: its newest try, what waits."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import func, select

from vidgen.db.models import Delivery
from vidgen.db.session import Database


@dataclass(frozen=True, slots=True)
class TargetState:
    waiting: int  # not delivered yet, tried again later (or not tried yet)
    given_up: int  # not delivered after notifications.maxAttempts tries
    last_ok: bool | None  # whether the newest try was delivered; None before any try
    last_error: str | None  # why the newest try failed
    last_delivered_at: datetime | None


def target_states(database: Database, keys: Iterable[str]) -> dict[str, TargetState]:
    states = {}
    with database.session() as session:
        for key in keys:
            mine = Delivery.target == key
            undelivered = mine & Delivery.delivered_at.is_(None)
            waiting = session.scalar(
                select(func.count()).where(undelivered, Delivery.next_try_at.is_not(None))
            )
            given_up = session.scalar(
                select(func.count()).where(undelivered, Delivery.next_try_at.is_(None))
            )
            newest = session.scalars(
                select(Delivery)
                .where(mine, Delivery.attempts > 0)
                .order_by(Delivery.updated_at.desc(), Delivery.id.desc())
                .limit(1)
            ).first()
            delivered_at = session.scalar(select(func.max(Delivery.delivered_at)).where(mine))
            states[key] = TargetState(
                waiting=int(waiting or 0),
                given_up=int(given_up or 0),
                last_ok=None if newest is None else newest.delivered_at is not None,
                last_error=None if newest is None else newest.last_error,
                last_delivered_at=delivered_at,
            )
    return states
