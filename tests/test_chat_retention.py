"""Retention through the real wiring (rules registered by the chat context, durations from settings), on
SQLite and PostgreSQL, with an injected clock: what is older goes, nothing younger is touched."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import yaml
from sqlalchemy import func, select

from hearth.auth.service import AuthService
from hearth.chat.models import Conversation, Message
from hearth.chat.ports import SERVICE as CHAT
from hearth.chat.wiring import CONTEXT
from hearth.config import Settings
from hearth.platform.core import build_platform, close_platform
from hearth.platform.db import new_id

NOW = datetime(2026, 11, 22, 12, 0, tzinfo=UTC)


def _conversation(user_id: str, *ages: timedelta) -> tuple[Conversation, list[Message]]:
    conversation = Conversation(
        id=new_id(),
        user_id=user_id,
        title="t",
        title_source="model",
        created_at=NOW - ages[0],
        updated_at=NOW,
    )
    messages = [
        Message(
            id=new_id(),
            conversation_id=conversation.id,
            user_id=user_id,
            seq=i + 1,
            role="user" if i % 2 == 0 else "assistant",
            content=f"message {i}",
            status="complete",
            meta={},
            created_at=NOW - age,
        )
        for i, age in enumerate(ages)
    ]
    return conversation, messages


async def test_chat_text_and_sessions_expire_by_the_configured_ages(database_url: str, tmp_path) -> None:  # type: ignore[no-untyped-def]
    config = tmp_path / "hearth.yaml"
    config.write_text(yaml.safe_dump({"include_defaults": False}))
    settings = Settings(
        data_dir=tmp_path, config_file=config, database_url=database_url, retention_sweep_seconds=0
    )
    platform = await build_platform(settings, [CONTEXT])
    try:
        platform.retention.clock = lambda: NOW
        chat = platform.ports.require(CHAT)
        user = await AuthService(platform.db).create_user(username="dora")
        old, old_messages = _conversation(user.id, timedelta(days=40), timedelta(days=39))
        mixed, mixed_messages = _conversation(
            user.id, timedelta(days=31), timedelta(days=29), timedelta(days=1)
        )
        young, young_messages = _conversation(user.id, timedelta(days=29, hours=23))
        async with platform.db.transaction() as s:
            s.add_all([old, mixed, young])
            await s.flush()
            s.add_all([*old_messages, *mixed_messages, *young_messages])

        chat.sessions.clock = lambda: NOW - timedelta(days=8)
        stale = await chat.sessions.open(user_id=user.id, kind="voice")
        chat.sessions.clock = lambda: NOW - timedelta(days=6, hours=23)
        fresh = await chat.sessions.open(user_id=user.id, kind="chat")
        chat.sessions.clock = lambda: NOW

        deleted = await platform.retention.run_once()
        assert deleted["chat.messages"] == 3 and deleted["chat.sessions"] == 1

        async with platform.db.sessions() as s:
            conversations = set((await s.scalars(select(Conversation.id))).all())
            left = (await s.scalars(select(Message.content).where(Message.conversation_id == mixed.id))).all()
            total = await s.scalar(select(func.count()).select_from(Message))
        # A conversation whose every message expired goes with them (none is left without a message).
        assert conversations == {mixed.id, young.id}
        assert sorted(left) == ["message 1", "message 2"] and total == 3
        assert [s.id for s in await chat.sessions.list(user_id=user.id)] == [fresh.id]
        assert stale.id != fresh.id

        again = await platform.retention.run_once()
        assert {k: v for k, v in again.items() if k.startswith("chat.")} == {
            "chat.messages": 0,
            "chat.sessions": 0,
        }
    finally:
        await close_platform(platform)


async def test_retention_ages_are_configurable(tmp_path) -> None:  # type: ignore[no-untyped-def]
    config = tmp_path / "hearth.yaml"
    config.write_text(yaml.safe_dump({"include_defaults": False}))
    settings = Settings(
        data_dir=tmp_path,
        config_file=config,
        retention_sweep_seconds=0,
        chat_retention_days=2,
        session_max_age_days=0.5,
    )
    platform = await build_platform(settings, [CONTEXT])
    try:
        rules = {r.name: r.max_age for r in platform.retention.rules if r.name.startswith("chat.")}
        assert rules == {"chat.messages": timedelta(days=2), "chat.sessions": timedelta(hours=12)}
        assert platform.ports.require(CHAT).sessions.max_age == timedelta(hours=12)
    finally:
        await close_platform(platform)
