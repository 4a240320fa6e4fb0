"""LangGraph's checkpoint saver on Hearth's own database: the SQLite file (AsyncSqliteSaver) or PostgreSQL
(AsyncPostgresSaver), whichever `database_url` names. The saver creates and migrates its own tables
(`checkpoints`, `writes`; on PostgreSQL also `checkpoint_blobs`, `checkpoint_writes`,
`checkpoint_migrations`); Alembic does not manage them.

Both savers are LangGraph's, with their two per-step writes (a node's writes, then the checkpoint) made
cheaper, rows and SQL unchanged: a graph step writes both, so their cost is most of a node's overhead
(bench/agents.py). SQLite: each write is one hop to aiosqlite's thread (statement and commit together)
instead of three or four (cursor, statement, commit, close), each of which wakes the event loop.
PostgreSQL: the rows are serialised in the event loop instead of in a worker thread (`asyncio.to_thread`):
a step's writes are a few KB, which msgpack turns into bytes in microseconds, far less than the thread
hop. Both copy a few lines of the pinned savers (langgraph-checkpoint-sqlite 3.1.2, -postgres 3.2.0);
tests/test_agents_*.py run every path on both databases."""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any

from langchain_core.runnables import RunnableConfig
from langgraph.checkpoint.base import (
    WRITES_IDX_MAP,
    BaseCheckpointSaver,
    ChannelVersions,
    Checkpoint,
    CheckpointMetadata,
    get_checkpoint_metadata,
    get_serializable_checkpoint_metadata,
)
from langgraph.checkpoint.postgres.aio import AsyncPostgresSaver
from langgraph.checkpoint.serde.types import _DeltaSnapshot
from langgraph.checkpoint.sqlite.aio import AsyncSqliteSaver
from psycopg import AsyncConnection
from psycopg.types.json import Jsonb
from sqlalchemy.engine import make_url

_SQLITE_CHECKPOINT = (
    "INSERT OR REPLACE INTO checkpoints (thread_id, checkpoint_ns, checkpoint_id, parent_checkpoint_id, "
    "type, checkpoint, metadata) VALUES (?, ?, ?, ?, ?, ?, ?)"
)
_SQLITE_WRITES = (
    "INSERT OR {verb} INTO writes (thread_id, checkpoint_ns, checkpoint_id, task_id, task_path, idx, "
    "channel, type, value) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)"
)


def _stored_config(thread_id: str, checkpoint_ns: str, checkpoint_id: str) -> RunnableConfig:
    """What `aput` answers (LangGraph's saver contract): the config that addresses the stored checkpoint."""
    return {
        "configurable": {
            "thread_id": thread_id,
            "checkpoint_ns": checkpoint_ns,
            "checkpoint_id": checkpoint_id,
        }
    }


def _replaces(writes: Sequence[tuple[str, Any]]) -> bool:
    """LangGraph's rule for a step's writes: special channels (errors, interrupts) replace an earlier write
    of the same task; any other write keeps the first."""
    return all(w[0] in WRITES_IDX_MAP for w in writes)


@dataclass
class Checkpointer:
    saver: BaseCheckpointSaver  # type: ignore[type-arg]
    close: Callable[[], Awaitable[None]]


def _write(conn: sqlite3.Connection, sql: str, rows: list[tuple[Any, ...]]) -> None:
    """Runs in aiosqlite's thread: the statement and its commit in one hop."""
    try:
        conn.executemany(sql, rows)
        conn.commit()
    except BaseException:
        conn.rollback()
        raise


class SqliteSaver(AsyncSqliteSaver):
    """AsyncSqliteSaver whose two writes per step take one hop each to the connection's thread."""

    async def _run(self, sql: str, rows: list[tuple[Any, ...]]) -> None:
        # aiosqlite (pinned 0.22.1) has no public call for "run this function in the connection's thread";
        # `_execute` is what its own execute/commit use.
        async with self.lock:
            await self.conn._execute(_write, self.conn._conn, sql, rows)

    async def aput(
        self,
        config: RunnableConfig,
        checkpoint: Checkpoint,
        metadata: CheckpointMetadata,
        new_versions: ChannelVersions,
    ) -> RunnableConfig:
        await self.setup()
        thread_id = config["configurable"]["thread_id"]
        checkpoint_ns = config["configurable"]["checkpoint_ns"]
        type_, blob = self.serde.dumps_typed(checkpoint)
        meta = json.dumps(get_checkpoint_metadata(config, metadata), ensure_ascii=False).encode(
            "utf-8", "ignore"
        )
        row = (
            str(thread_id),
            checkpoint_ns,
            checkpoint["id"],
            config["configurable"].get("checkpoint_id"),
            type_,
            blob,
            meta,
        )
        await self._run(_SQLITE_CHECKPOINT, [row])
        return _stored_config(thread_id, checkpoint_ns, checkpoint["id"])

    async def aput_writes(
        self,
        config: RunnableConfig,
        writes: Sequence[tuple[str, Any]],
        task_id: str,
        task_path: str = "",
    ) -> None:
        verb = "REPLACE" if _replaces(writes) else "IGNORE"
        await self.setup()
        c = config["configurable"]
        rows = [
            (
                str(c["thread_id"]),
                str(c["checkpoint_ns"]),
                str(c["checkpoint_id"]),
                task_id,
                task_path,
                WRITES_IDX_MAP.get(channel, idx),
                channel,
                *self.serde.dumps_typed(value),
            )
            for idx, (channel, value) in enumerate(writes)
        ]
        await self._run(_SQLITE_WRITES.format(verb=verb), rows)


class PostgresSaver(AsyncPostgresSaver):
    """AsyncPostgresSaver serialising a step's rows in the event loop (one pipelined round trip each for
    the writes and the checkpoint, as LangGraph's; no thread hop before it)."""

    async def aput(
        self,
        config: RunnableConfig,
        checkpoint: Checkpoint,
        metadata: CheckpointMetadata,
        new_versions: ChannelVersions,
    ) -> RunnableConfig:
        configurable = config["configurable"].copy()
        thread_id = configurable.pop("thread_id")
        checkpoint_ns = configurable.pop("checkpoint_ns")
        checkpoint_id = configurable.pop("checkpoint_id", None)
        copy = checkpoint.copy()
        copy["channel_values"] = copy["channel_values"].copy()
        # As LangGraph's: primitives stay inline in the checkpoint row, the rest go to the blobs table.
        blob_values = {}
        for k, v in checkpoint["channel_values"].items():
            if isinstance(v, _DeltaSnapshot):
                blob_values[k] = copy["channel_values"].pop(k)
                copy["channel_values"][k] = True
            elif v is None or isinstance(v, (str, int, float, bool)):
                pass
            else:
                blob_values[k] = copy["channel_values"].pop(k)
        blob_versions = {k: v for k, v in new_versions.items() if k in blob_values}
        blobs = self._dump_blobs(thread_id, checkpoint_ns, blob_values, blob_versions)
        async with self._cursor(pipeline=True) as cur:
            if blobs:
                await cur.executemany(self.UPSERT_CHECKPOINT_BLOBS_SQL, blobs)
            await cur.execute(
                self.UPSERT_CHECKPOINTS_SQL,
                (
                    thread_id,
                    checkpoint_ns,
                    checkpoint["id"],
                    checkpoint_id,
                    Jsonb(copy),
                    Jsonb(get_serializable_checkpoint_metadata(config, metadata)),
                ),
            )
        return _stored_config(thread_id, checkpoint_ns, checkpoint["id"])

    async def aput_writes(
        self,
        config: RunnableConfig,
        writes: Sequence[tuple[str, Any]],
        task_id: str,
        task_path: str = "",
    ) -> None:
        query = self.UPSERT_CHECKPOINT_WRITES_SQL if _replaces(writes) else self.INSERT_CHECKPOINT_WRITES_SQL
        c = config["configurable"]
        params = self._dump_writes(
            c["thread_id"], c["checkpoint_ns"], c["checkpoint_id"], task_id, task_path, writes
        )
        async with self._cursor(pipeline=True) as cur:
            await cur.executemany(query, params)


async def _no_commit_flush(conn: AsyncConnection[Any]) -> None:
    """The saver's sessions do not wait for the WAL flush at commit (PostgreSQL's counterpart of SQLite's
    synchronous=NORMAL above): a Hearth process that dies loses no stored checkpoint; a PostgreSQL server
    that crashes may lose the last fraction of a second of them (3 x wal_writer_delay at most), and those
    runs resume a node or two earlier. Nothing is corrupted or half-applied; Hearth's own tables keep
    the server's default."""
    await conn.execute("SET synchronous_commit = off")


async def open_checkpointer(database_url: str, *, stock: bool = False) -> Checkpointer:
    """`stock`: LangGraph's savers unchanged (bench/agents.py measures the difference)."""
    url = make_url(database_url)
    if url.get_backend_name() == "sqlite":
        import aiosqlite

        path = url.database or ":memory:"
        # Same file as Hearth's tables; WAL (set by Hearth's engine) lets both write with short waits.
        conn = await aiosqlite.connect(path, timeout=30)
        await conn.execute("PRAGMA journal_mode=WAL")
        await conn.execute("PRAGMA busy_timeout=30000")
        # In WAL mode NORMAL loses no committed checkpoint when the process dies (only on power loss), and
        # spares the fsync that FULL adds to every step.
        await conn.execute("PRAGMA synchronous=NORMAL")
        sqlite_saver = (AsyncSqliteSaver if stock else SqliteSaver)(conn)
        await sqlite_saver.setup()
        return Checkpointer(sqlite_saver, conn.close)

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
        configure=None if stock else _no_commit_flush,
    )
    await pool.open(wait=True, timeout=30)
    pg_saver = (AsyncPostgresSaver if stock else PostgresSaver)(pool)  # type: ignore[arg-type]
    await pg_saver.setup()
    return Checkpointer(pg_saver, pool.close)
