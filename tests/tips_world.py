"""The tips context's parts built over one database, without a server: for tests of connectors, agents,
pre-compute and privacy on SQLite and PostgreSQL."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

from sqlalchemy import insert

from hearth.auth.models import User
from hearth.events.bus import EventBus
from hearth.platform.db import Database, new_id, utcnow
from hearth.tips.feedback import FeedbackService
from hearth.tips.locks import AgentLocks
from hearth.tips.manifest import Registry
from hearth.tips.precompute import Precompute
from hearth.tips.profile import ProfileService
from hearth.tips.sync import Connectors
from hearth.tips.vault import Vault, load_key


@dataclass
class World:
    db: Database
    bus: EventBus
    registry: Registry
    profile: ProfileService
    connectors: Connectors
    precompute: Precompute
    feedback: FeedbackService
    files: Path


def build(
    db: Database, tmp_path: Path, *, todoist_url: str = "http://127.0.0.1:9", registry: Registry | None = None
) -> World:
    bus = EventBus(db)
    registry = registry or Registry.load()
    files = tmp_path / "tips-files"
    files.mkdir(exist_ok=True)
    connectors = Connectors(
        db,
        bus,
        Vault(load_key(tmp_path, None)),
        registry,
        todoist_url=todoist_url,
        files_root=files,
        interval=timedelta(minutes=15),
        backoff=timedelta(seconds=60),
        max_backoff=timedelta(hours=6),
        http_backoff=0,
    )
    return World(
        db=db,
        bus=bus,
        registry=registry,
        profile=ProfileService(db, bus, registry),
        connectors=connectors,
        precompute=Precompute(db, bus, registry, AgentLocks(db)),
        feedback=FeedbackService(db, bus, registry, connectors),
        files=files,
    )


async def add_users(db: Database, n: int, prefix: str = "u") -> list[str]:
    """`n` users inserted in one statement (the auth service would hash and audit each one)."""
    ids = [new_id() for _ in range(n)]
    rows = [
        {
            "id": uid,
            "username": f"{prefix}{i}-{uid[:6]}",
            "role": "user",
            "premium": False,
            "disabled": False,
            "created_at": utcnow(),
        }
        for i, uid in enumerate(ids)
    ]
    async with db.transaction() as s:
        await s.execute(insert(User), rows)
    return ids
