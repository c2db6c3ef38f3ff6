"""Alembic environment: igsched passes its own engine connection (scheduler.store.engine)."""

from __future__ import annotations

from alembic import context
from sqlalchemy import Connection

from scheduler.store.schema import metadata


def _run(connection: Connection) -> None:
    context.configure(
        connection=connection,
        target_metadata=metadata,
        render_as_batch=connection.dialect.name == "sqlite",  # SQLite alters via table copies
    )
    with context.begin_transaction():
        context.run_migrations()


config = context.config
given = config.attributes.get("connection")
if given is not None:
    _run(given)
else:  # plain `alembic` CLI use: build an engine from sqlalchemy.url
    from scheduler.store.engine import make_engine

    with make_engine(config.get_main_option("sqlalchemy.url") or "").connect() as conn:
        _run(conn)
