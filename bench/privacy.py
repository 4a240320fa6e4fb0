"""Export and erasure of one user, timed, against a database where many other users have data.

The erasure's cost that grows with everyone's data, not the user's, is the event outbox: events carry no
indexed user column, so erasure decodes every outbox row once. This measures export and erasure of one
user with a growing outbox, on SQLite (a file) and PostgreSQL:

    .venv/bin/python bench/privacy.py --users 200 --events 5000 50000 200000
    .venv/bin/python bench/privacy.py --postgres postgresql://postgres@127.0.0.1:5432/test ...

Each user gets a conversation with 20 messages and a usage row; the outbox gets `events` chat events
spread over all users. Prints one line per size: rows, export ms, erase ms (both passes).
"""

from __future__ import annotations

import argparse
import asyncio
import tempfile
import time
import uuid
from datetime import date, timedelta
from pathlib import Path

import orjson
import psycopg

from hearth.auth.service import AuthService
from hearth.chat.events import MessageStored
from hearth.chat.models import Conversation, Message
from hearth.chat.personal_data import ChatPersonalData
from hearth.chat.sessions import Sessions, SqlSessionStore
from hearth.events import outbox
from hearth.events.personal_data import OutboxPersonalData
from hearth.platform.db import Database, new_id
from hearth.platform.migrate import upgrade
from hearth.platform.personal_data import PersonalDataRegistry
from hearth.usage.ledger import UsageLedger
from hearth.usage.models import UsageDay


async def fill(db: Database, users: int, events: int) -> list[str]:
    auth = AuthService(db)
    ids = [(await auth.create_user(username=f"u{i}")).id for i in range(users)]
    async with db.transaction() as s:
        for user_id in ids:
            conversation = Conversation(id=new_id(), user_id=user_id, title="t")
            s.add(conversation)
            s.add_all(
                Message(
                    id=new_id(), conversation_id=conversation.id, user_id=user_id, seq=n, role="user",
                    content=f"message {n} of {user_id}", meta={},
                )
                for n in range(20)
            )  # fmt: skip
            s.add(UsageDay(day=date.today(), user_id=user_id, key_id="", alias="chat", requests=1, failures=0,
                           prompt_tokens=5, completion_tokens=5))  # fmt: skip
    batch = 5000
    for start in range(0, events, batch):
        async with db.transaction() as s:
            s.add_all(
                outbox.new_row(
                    MessageStored(
                        conversation_id="c",
                        message_id=new_id(),
                        user_id=ids[(start + i) % users],
                        role="user",
                        status="complete",
                    )
                )
                for i in range(min(batch, events - start))
            )
    await auth.drain()
    return ids


async def measure(url: str, users: int, events: int) -> dict[str, float]:
    upgrade(url)
    db = Database(url)
    try:
        ids = await fill(db, users, events)
        auth = AuthService(db)
        registry = PersonalDataRegistry()
        registry.register(ChatPersonalData(db, Sessions(SqlSessionStore(db), max_age=timedelta(days=7))))
        registry.register(UsageLedger(db=db, users=auth))
        registry.register(OutboxPersonalData(db, auth), last=True)
        target = ids[len(ids) // 2]
        t0 = time.perf_counter()
        exported = await registry.export(target)
        t1 = time.perf_counter()
        await registry.erase(target)
        t2 = time.perf_counter()
        assert exported["chat"]["messages"] and not (await registry.export(target))["chat"]["messages"]
        return {
            "export_ms": (t1 - t0) * 1e3,
            "erase_ms": (t2 - t1) * 1e3,
            "archive_bytes": len(orjson.dumps(exported)),
        }
    finally:
        await db.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--users", type=int, default=200)
    parser.add_argument("--events", type=int, nargs="+", default=[5_000, 50_000])
    parser.add_argument("--postgres", help="a PostgreSQL DSN: run there (one schema per size, dropped after)")
    args = parser.parse_args()
    print(f"{'backend':10} {'users':>6} {'outbox rows':>12} {'export ms':>10} {'erase ms':>10}")
    for events in args.events:
        if args.postgres:
            schema = f"bench_privacy_{uuid.uuid4().hex[:8]}"
            with psycopg.connect(args.postgres, autocommit=True) as conn:
                conn.execute(f'CREATE SCHEMA "{schema}"')
            base = args.postgres.replace("postgresql://", "postgresql+psycopg://", 1)
            try:
                result = asyncio.run(measure(f"{base}?options=-csearch_path%3D{schema}", args.users, events))
            finally:
                with psycopg.connect(args.postgres, autocommit=True) as conn:
                    conn.execute(f'DROP SCHEMA "{schema}" CASCADE')
            backend = "postgres"
        else:
            with tempfile.TemporaryDirectory() as folder:
                result = asyncio.run(
                    measure(f"sqlite+aiosqlite:///{Path(folder) / 'h.db'}", args.users, events)
                )
            backend = "sqlite"
        timings = f"{result['export_ms']:>10.0f} {result['erase_ms']:>10.0f}"
        print(f"{backend:10} {args.users:>6} {events:>12} {timings}")


if __name__ == "__main__":
    main()
