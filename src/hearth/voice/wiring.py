"""How the voice context plugs into the platform (see hearth.platform.contexts): the voice routes, the
OpenAI-compatible /v1/audio routes, and the voice retention rules."""

from __future__ import annotations

from typing import TYPE_CHECKING

from hearth.gateway.audio_api import router as audio_router
from hearth.platform.contexts import Context
from hearth.voice.api import router as voice_router
from hearth.voice.service import VoiceService

if TYPE_CHECKING:
    from hearth.app import Platform


async def start(platform: Platform) -> VoiceService:
    voice = VoiceService(
        db=platform.db,
        bus=platform.bus,
        gateway=platform.gateway,
        settings=platform.settings,
        services=platform.services,
    )
    for rule in voice.retention_rules():
        platform.retention.register(rule)
    if platform.settings.voice_warmup:
        voice.warm_up()
    return voice


CONTEXT = Context(name="voice", start=start, routers=(audio_router, voice_router))
