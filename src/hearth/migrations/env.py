"""Alembic environment: reads the URL set by hearth.platform.migrate and all Hearth tables."""

from __future__ import annotations

from alembic import context
from sqlalchemy import create_engine, pool, text

import hearth.models  # noqa: F401  (registers every table on Base.metadata)
from hearth.platform.db import Base

config = context.config
target_metadata = Base.metadata


def run_migrations_offline() -> None:
    context.configure(
        url=config.get_main_option("sqlalchemy.url"),
        target_metadata=target_metadata,
        literal_binds=True,
        render_as_batch=True,
    )
    with context.begin_transaction():
        context.run_migrations()


def run_migrations_online() -> None:
    engine = create_engine(config.get_main_option("sqlalchemy.url"), poolclass=pool.NullPool)
    with engine.connect() as connection:
        context.configure(connection=connection, target_metadata=target_metadata, render_as_batch=True)
        with context.begin_transaction():
            if connection.dialect.name == "postgresql":
                # Replicas starting together on one database migrate one at a time: the others wait here,
                # then find the schema current. (Held until this transaction ends.)
                connection.execute(text("SELECT pg_advisory_xact_lock(7281944203)"))
            context.run_migrations()
    engine.dispose()


if context.is_offline_mode():
    run_migrations_offline()
else:
    run_migrations_online()
