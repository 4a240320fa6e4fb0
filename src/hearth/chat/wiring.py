"""How the chat context plugs into the platform (see hearth.platform.core): uses rag's `Retriever` when
loaded, provides `SessionTracker` and `PreferenceReader`."""

from __future__ import annotations

from datetime import timedelta

from hearth.chat import ports
from hearth.chat.api import router
from hearth.chat.conversations import Conversations
from hearth.chat.personal_data import ChatPersonalData
from hearth.chat.preferences import PreferencesService
from hearth.chat.service import ChatService
from hearth.chat.sessions import RedisSessionStore, Sessions, SessionStore, SqlSessionStore
from hearth.chat.turns import Turns
from hearth.platform.core import Context, Platform
from hearth.platform.retention import RetentionRule
from hearth.rag.ports import RETRIEVER


async def start(platform: Platform) -> ChatService:
    settings = platform.settings
    max_age = timedelta(days=settings.session_max_age_days)
    store: SessionStore
    if settings.redis_url:
        store = RedisSessionStore(
            settings.redis_url, prefix=settings.redis_prefix, max_age=max_age, bus=platform.bus
        )
    else:
        store = SqlSessionStore(platform.db, platform.bus)
    turns = Turns(
        db=platform.db,
        bus=platform.bus,
        gateway=platform.gateway,
        settings=settings,
        retriever=platform.ports.find(RETRIEVER),
        sessions=Sessions(store, max_age=max_age),
        preferences=PreferencesService(
            platform.db, platform.bus, check_model=lambda alias: platform.gateway.router.get(alias, "chat")
        ),
    )
    chat = ChatService(turns=turns, conversations=Conversations(db=platform.db, bus=platform.bus))
    platform.retention.register(
        RetentionRule("chat.messages", timedelta(days=settings.chat_retention_days), chat.sweep_messages)
    )
    platform.retention.register(RetentionRule("chat.sessions", max_age, chat.sessions.sweep))
    platform.personal_data.register(ChatPersonalData(platform.db, chat.sessions))
    platform.ports.provide(ports.SESSIONS, chat.sessions)
    platform.ports.provide(ports.PREFERENCES, chat.preferences)
    platform.ports.provide(ports.SERVICE, chat)
    return chat


async def stop(chat: ChatService) -> None:
    await chat.sessions.store.close()


CONTEXT = Context(name="chat", start=start, stop=stop, routers=(router,))
