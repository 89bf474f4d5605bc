"""File-name indices per (project, file type), handed out once each across processes and hosts."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError

from vidgen.db.models import NameCounter
from vidgen.db.session import Database
from vidgen.errors import DatabaseUnavailable

_TRIES = 8


def allocate_index(database: Database, project_name: str, file_type: str) -> int:
    """The next index (1, 2, …) for this project and type; each index is handed out once.

    The counter row is locked for the length of one short transaction (SELECT … FOR UPDATE on
    MariaDB; SQLite's single writer does the same). Two takers creating the first row at once
    collide on the primary key, and the loser tries again.
    """
    last_error: Exception | None = None
    for _ in range(_TRIES):
        try:
            with database.session() as session:
                row = session.scalars(
                    select(NameCounter)
                    .where(
                        NameCounter.project_name == project_name,
                        NameCounter.file_type == file_type,
                    )
                    .with_for_update()
                ).one_or_none()
                if row is None:
                    session.add(
                        NameCounter(project_name=project_name, file_type=file_type, last_index=1)
                    )
                    session.flush()
                    return 1
                row.last_index += 1
                return row.last_index
        except (IntegrityError, DatabaseUnavailable) as exc:  # first-row race or deadlock
            last_error = exc
    raise DatabaseUnavailable(
        f"could not allocate a file number for {project_name}/{file_type}: {last_error}"
    )
