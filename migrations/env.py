"""Alembic environment: runs on the connection vidgen hands over, or on the configured database."""

from __future__ import annotations

from alembic import context
from sqlalchemy import Connection

from vidgen.db.models import Base

config = context.config
target_metadata = Base.metadata


def _run(connection: Connection) -> None:
    context.configure(
        connection=connection,
        target_metadata=target_metadata,
        render_as_batch=connection.dialect.name == "sqlite",
        compare_type=True,
    )
    with context.begin_transaction():
        context.run_migrations()


def run_migrations_online() -> None:
    connection = config.attributes.get("connection")
    if connection is not None:
        _run(connection)
        return
    # `alembic` run by hand: use vidgen's own settings.
    from vidgen.config import load_settings
    from vidgen.db.session import open_database

    database = open_database(load_settings().database_url)
    with database.engine.begin() as own_connection:
        _run(own_connection)


run_migrations_online()
