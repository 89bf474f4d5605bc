"""File-name indices per (project, file type), handed out once each across processes and hosts."""

from __future__ import annotations

from sqlalchemy import insert, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from vidgen.db.models import NameCounter
from vidgen.db.session import Database
from vidgen.errors import DatabaseUnavailable

_TRIES = 8


def allocate_index(database: Database, project_name: str, file_type: str) -> int:
    """The next index (1, 2, …) for this project and type; each index is handed out once.

    The increment comes first, as one UPDATE: it takes the row lock on MariaDB and the write
    lock on SQLite (whose driver starts a transaction only at the first write, so a read first
    would race). Two takers creating the first row at once collide on the primary key, and the
    loser tries again.
    """
    last_error: Exception | None = None
    for _ in range(_TRIES):
        try:
            with database.session() as session:
                return next_index_in(session, project_name, file_type)
        except (IntegrityError, DatabaseUnavailable) as exc:  # first-row race or deadlock
            last_error = exc
    raise DatabaseUnavailable(
        f"could not allocate a file number for {project_name}/{file_type}: {last_error}"
    )


def next_index_in(session: Session, project_name: str, file_type: str) -> int:
    """The next index, taken inside the caller's transaction (its commit makes it final).

    Raises:
        IntegrityError: another transaction created the counter's first row at the same moment.
    """
    key = (NameCounter.project_name == project_name, NameCounter.file_type == file_type)
    bumped = session.execute(
        update(NameCounter).where(*key).values(last_index=NameCounter.last_index + 1)
    )
    if bumped.rowcount == 0:  # type: ignore[attr-defined]
        session.execute(
            insert(NameCounter).values(project_name=project_name, file_type=file_type, last_index=1)
        )
        return 1
    return int(session.scalars(select(NameCounter.last_index).where(*key)).one())
