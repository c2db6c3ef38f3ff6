"""Alembic environment: igsched passes its own engine connection (scheduler.store.engine)."""

from __future__ import annotations

from alembic import context

from scheduler.store.schema import metadata

config = context.config
connection = config.attributes.get("connection")

if connection is None:  # plain `alembic` CLI use: build an engine from sqlalchemy.url
    from scheduler.store.engine import make_engine

    engine = make_engine(config.get_main_option("sqlalchemy.url") or "")
    with engine.connect() as conn:
        context.configure(
            connection=conn,
            target_metadata=metadata,
            render_as_batch=conn.dialect.name == "sqlite",
        )
        with context.begin_transaction():
            context.run_migrations()
else:
    context.configure(
        connection=connection,
        target_metadata=metadata,
        render_as_batch=connection.dialect.name == "sqlite",
    )
    with context.begin_transaction():
        context.run_migrations()
