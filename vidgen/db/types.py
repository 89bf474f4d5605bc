"""Column types that behave the same on MariaDB and SQLite
(docs/testing.md#column-types-on-both-databases)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import BigInteger, DateTime, Dialect
from sqlalchemy.dialects import mysql
from sqlalchemy.types import TypeDecorator

U64_MAX = 2**64 - 1


class UnsignedBigInt(TypeDecorator[int]):
    """0..2^64-1 without loss: BIGINT UNSIGNED on MariaDB; on SQLite, which has only signed
    64-bit integers, the same bits stored as a two's-complement signed value."""

    impl = BigInteger
    cache_ok = True

    def load_dialect_impl(self, dialect: Dialect) -> Any:
        if dialect.name in ("mysql", "mariadb"):
            return dialect.type_descriptor(mysql.BIGINT(unsigned=True))
        return dialect.type_descriptor(BigInteger())

    def process_bind_param(self, value: int | None, dialect: Dialect) -> int | None:
        if value is None:
            return None
        if not 0 <= value <= U64_MAX:
            raise ValueError(f"seed {value} is outside 0..2^64-1")
        if dialect.name == "sqlite" and value >= 2**63:
            return value - 2**64
        return value

    def process_result_value(self, value: int | None, dialect: Dialect) -> int | None:
        if value is None:
            return None
        value = int(value)
        return value + 2**64 if value < 0 else value


class UTCDateTime(TypeDecorator[datetime]):
    """Aware UTC datetimes with microseconds on both databases (plain DATETIME on MariaDB
    would drop the fraction)."""

    impl = DateTime
    cache_ok = True

    def load_dialect_impl(self, dialect: Dialect) -> Any:
        if dialect.name in ("mysql", "mariadb"):
            return dialect.type_descriptor(mysql.DATETIME(fsp=6))
        return dialect.type_descriptor(DateTime())

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given; vidgen stores aware UTC times only")
        return value.astimezone(UTC).replace(tzinfo=None)

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        return None if value is None else value.replace(tzinfo=UTC)


def utcnow() -> datetime:
    return datetime.now(UTC)
