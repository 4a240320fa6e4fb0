"""LangGraph's checkpoint saver on Hearth's own database: the SQLite file (AsyncSqliteSaver) or PostgreSQL
(AsyncPostgresSaver), whichever `database_url` names. The saver creates and migrates its own tables
(`checkpoints`, `writes`; on PostgreSQL also `checkpoint_blobs`, `checkpoint_writes`,
`checkpoint_migrations`) beside Hearth's; Alembic does not manage them."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from langgraph.checkpoint.base import BaseCheckpointSaver
from sqlalchemy.engine import make_url


@dataclass
class Checkpointer:
    saver: BaseCheckpointSaver  # type: ignore[type-arg]
    close: Callable[[], Awaitable[None]]


async def open_checkpointer(database_url: str) -> Checkpointer:
    url = make_url(database_url)
    if url.get_backend_name() == "sqlite":
        import aiosqlite
        from langgraph.checkpoint.sqlite.aio import AsyncSqliteSaver

        path = url.database or ":memory:"
        # Same file as Hearth's tables; WAL (set by Hearth's engine) lets both write with short waits.
        conn = await aiosqlite.connect(path, timeout=30)
        await conn.execute("PRAGMA journal_mode=WAL")
        await conn.execute("PRAGMA busy_timeout=30000")
        # In WAL mode NORMAL loses no committed checkpoint when the process dies (only on power loss), and
        # spares the fsync that FULL adds to every step.
        await conn.execute("PRAGMA synchronous=NORMAL")
        sqlite_saver = AsyncSqliteSaver(conn)
        await sqlite_saver.setup()
        return Checkpointer(sqlite_saver, conn.close)

    from langgraph.checkpoint.postgres.aio import AsyncPostgresSaver
    from psycopg.rows import dict_row
    from psycopg_pool import AsyncConnectionPool

    # The SQLAlchemy URL with its driver dropped is a libpq URI (its `options`, e.g. a search_path, kept).
    conninfo = url.set(drivername="postgresql").render_as_string(hide_password=False)
    pool = AsyncConnectionPool(
        conninfo,
        min_size=1,
        max_size=5,
        open=False,
        kwargs={"autocommit": True, "prepare_threshold": 0, "row_factory": dict_row},
    )
    await pool.open(wait=True, timeout=30)
    pg_saver = AsyncPostgresSaver(pool)  # type: ignore[arg-type]
    await pg_saver.setup()
    return Checkpointer(pg_saver, pool.close)
