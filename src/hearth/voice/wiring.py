"""How the voice context plugs into the platform (see hearth.platform.core): the voice routes, the
OpenAI-compatible /v1/audio routes, and the voice retention rules."""

from __future__ import annotations

from hearth.chat.ports import PREFERENCES, SESSIONS
from hearth.gateway.audio_api import router as audio_router
from hearth.platform.core import Context, Platform
from hearth.rag.ports import RETRIEVER
from hearth.voice import ports
from hearth.voice.api import router as voice_router
from hearth.voice.personal_data import VoicePersonalData
from hearth.voice.service import VoiceService


async def start(platform: Platform) -> VoiceService:
    voice = VoiceService(
        db=platform.db,
        bus=platform.bus,
        gateway=platform.gateway,
        settings=platform.settings,
        retriever=platform.ports.find(RETRIEVER),
        sessions=platform.ports.find(SESSIONS),
        preferences=platform.ports.find(PREFERENCES),
    )
    for rule in voice.retention_rules():
        platform.retention.register(rule)
    if platform.settings.voice_warmup:
        voice.warm_up()
    platform.personal_data.register(VoicePersonalData(platform.db, voice.store))
    platform.ports.provide(ports.SERVICE, voice)
    return voice


CONTEXT = Context(name="voice", start=start, routers=(audio_router, voice_router))
