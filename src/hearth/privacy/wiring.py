"""How the privacy context plugs into the platform (see hearth.platform.core): export and erasure over
the personal-data registry every earlier context registered its holder on."""

from __future__ import annotations

from hearth.auth.ports import USERS
from hearth.platform.core import Context, Platform
from hearth.privacy import ports
from hearth.privacy.api import router
from hearth.privacy.service import PrivacyService


async def start(platform: Platform) -> PrivacyService:
    service = PrivacyService(
        db=platform.db, bus=platform.bus, users=platform.ports.require(USERS), registry=platform.personal_data
    )
    platform.ports.provide(ports.SERVICE, service)
    return service


CONTEXT = Context(name="privacy", start=start, routers=(router,))
