"""The one place that makes a database engine; sessions, pings and migrations go through it."""

from __future__ import annotations

import fcntl
import logging
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Engine, create_engine, event, inspect, text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError, DBAPIError, InterfaceError, OperationalError
from sqlalchemy.orm import Session, sessionmaker

import migrations
from vidgen.errors import DatabaseUnavailable

log = logging.getLogger(__name__)

MIGRATIONS_DIR = Path(migrations.__file__).resolve().parent
_MIGRATION_LOCK = "vidgen_migrations"
_MIGRATION_LOCK_SECONDS = 600


@dataclass
class Database:
    """An engine and its session factory; ``is_mysql`` picks the claim strategy."""

    engine: Engine
    sessions: sessionmaker[Session]

    @property
    def is_mysql(self) -> bool:
        return self.engine.dialect.name in ("mysql", "mariadb")

    @contextmanager
    def session(self) -> Iterator[Session]:
        """One transaction: committed on success, rolled back on error.

        Raises:
            DatabaseUnavailable: the database cannot be reached (retryable).
        """
        session = self.sessions()
        try:
            yield session
            session.commit()
        except (OperationalError, InterfaceError) as exc:
            # Lost connection, server restarting, lock timeout: all worth another try later.
            _rollback_quietly(session)
            raise DatabaseUnavailable(f"the database is unavailable ({exc.orig})") from exc
        except BaseException:
            _rollback_quietly(session)
            raise
        finally:
            session.close()

    def ping(self) -> None:
        """Raises DatabaseUnavailable unless a trivial query answers."""
        try:
            with self.engine.connect() as connection:
                connection.execute(text("SELECT 1"))
        except DBAPIError as exc:
            raise DatabaseUnavailable(f"the database is unavailable ({exc.orig})") from exc

    def dispose(self) -> None:
        self.engine.dispose()


def url_without_password(url: str) -> str:
    """A database URL fit to print; a string that is no such URL comes back as it is."""
    try:
        return make_url(url).render_as_string(hide_password=True)
    except ArgumentError:
        return url


def _rollback_quietly(session: Session) -> None:
    """Roll back; with the connection already gone, the rollback itself may fail too."""
    try:
        session.rollback()
    except DBAPIError as exc:
        log.debug("rollback failed: %s", exc)


def open_database(url: str) -> Database:
    """Make the engine for ``url`` (SQLite file or MariaDB), creating a SQLite file's folder."""
    parsed = make_url(url)
    # A ping per checkout costs a round trip, but after a database restart no caller (a page,
    # a worker) meets a dead pooled connection.
    options: dict[str, Any] = {"pool_pre_ping": True}
    if parsed.get_backend_name() == "sqlite":
        if parsed.database and parsed.database != ":memory:":
            Path(parsed.database).parent.mkdir(parents=True, exist_ok=True)
        options["connect_args"] = {"check_same_thread": False, "timeout": 30}
    else:
        options.update(pool_recycle=3600, isolation_level="READ COMMITTED", pool_size=10)
    engine = create_engine(url, **options)
    if parsed.get_backend_name() == "sqlite":
        event.listen(engine, "connect", _sqlite_pragmas)
    return Database(engine=engine, sessions=sessionmaker(engine, expire_on_commit=False))


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    # WAL lets the status page read while a worker writes; busy_timeout makes writers queue
    # instead of failing with "database is locked".
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA busy_timeout=30000")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.close()


def upgrade(database: Database) -> None:
    """Apply every Alembic migration (also run at start). Any number of processes may call it at
    once: the migrations run under a lock, so the first one migrates and the rest find it done.

    Raises:
        DatabaseUnavailable: the database cannot be reached, or another process holds the lock
            for longer than ``_MIGRATION_LOCK_SECONDS``.
    """
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    try:
        with _migration_lock(database), database.engine.begin() as connection:
            config.attributes["connection"] = connection
            command.upgrade(config, "head")
    except DBAPIError as exc:
        raise DatabaseUnavailable(f"the database is unavailable ({exc.orig})") from exc


@contextmanager
def _migration_lock(database: Database) -> Iterator[None]:
    """Held while migrating: a MariaDB named lock (held by the connection, so it goes with a
    process that dies), or a lock on a file beside the SQLite database (the same)."""
    path = sqlite_file(database.engine.url.render_as_string(hide_password=False))
    if path is not None:
        with (path.parent / f"{path.name}.migrating").open("a") as handle:
            fcntl.flock(handle, fcntl.LOCK_EX)  # released when the file is closed
            yield
        return
    if not database.is_mysql:
        yield
        return
    with database.engine.connect() as connection:
        query = text("SELECT GET_LOCK(:name, :seconds)")
        got = connection.execute(
            query, {"name": _MIGRATION_LOCK, "seconds": _MIGRATION_LOCK_SECONDS}
        ).scalar()
        if got != 1:
            raise DatabaseUnavailable(
                f"another vidgen has been migrating the database for over "
                f"{_MIGRATION_LOCK_SECONDS} s; try again when it is done"
            )
        try:
            yield
        finally:
            connection.execute(text("SELECT RELEASE_LOCK(:name)"), {"name": _MIGRATION_LOCK})


@dataclass(frozen=True, slots=True)
class MigrationState:
    current: str | None  # None: no vidgen tables yet
    head: str  # the newest migration this vidgen has
    known: bool  # whether this vidgen has the current one (a newer vidgen may have migrated)


def migration_state(database: Database) -> MigrationState:
    """Where the database's schema is, without changing anything (``vidgen doctor``).

    Raises:
        DatabaseUnavailable: the database cannot be reached.
    """
    script = ScriptDirectory(str(MIGRATIONS_DIR))
    try:
        with database.engine.connect() as connection:
            current = MigrationContext.configure(connection).get_current_revision()
    except DBAPIError as exc:
        raise DatabaseUnavailable(f"the database is unavailable ({exc.orig})") from exc
    known = current is None or current in {r.revision for r in script.walk_revisions()}
    return MigrationState(current, script.get_current_head() or "", known)


def sqlite_file(url: str) -> Path | None:
    """The file of a SQLite URL; None for any other database (or an in-memory one)."""
    parsed = make_url(url)
    if parsed.get_backend_name() != "sqlite" or parsed.database in (None, "", ":memory:"):
        return None
    return Path(parsed.database)


def insert_new_in_bulk(session: Session, models: Sequence[type[Any]]) -> None:
    """INSERT the session's new rows of ``models`` (in this order, parents first) as one batched
    Core statement per table, instead of the unit of work's flush, which costs intake several
    milliseconds of Python per manifest. Columns left unset get their defaults."""
    # Every new row leaves the session before the first INSERT, whose autoflush would
    # otherwise send the rest through the unit of work, in its own order.
    batches = [(model, [_row(session, obj) for obj in _new_of(session, model)]) for model in models]
    connection = session.connection()
    for model, rows in batches:
        if rows:
            connection.execute(inspect(model).local_table.insert(), rows)


def _new_of(session: Session, model: type[Any]) -> list[Any]:
    return [obj for obj in session.new if type(obj) is model]


def _row(session: Session, obj: Any) -> dict[str, Any]:
    """The object's column values by column key; unset columns are left to their defaults."""
    row = {}
    for attribute in inspect(type(obj)).column_attrs:
        value = getattr(obj, attribute.key)
        column = attribute.columns[0]
        if value is None and (column.default is not None or column.primary_key):
            continue  # the column's default (or the database's autoincrement) fills it
        row[column.key] = value
    session.expunge(obj)
    return row
