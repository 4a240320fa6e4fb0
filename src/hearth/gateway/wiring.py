"""How the gateway's admin side plugs into the platform (see hearth.platform.core). The gateway itself is a
platform part (every context calls models through it); this context applies the catalogue changes admins
stored (before any other context starts) and serves /api/admin/models."""

from __future__ import annotations

from hearth.gateway import ports
from hearth.gateway.admin import ModelAdmin
from hearth.gateway.admin_api import router
from hearth.platform.core import Context, Platform


async def start(platform: Platform) -> ModelAdmin:
    admin = ModelAdmin(
        db=platform.db,
        bus=platform.bus,
        registry=platform.ports.require(ports.ALIASES),
        sync_seconds=platform.settings.models_sync_seconds,
    )
    await admin.apply_stored()
    admin.start()
    platform.ports.provide(ports.SERVICE, admin)
    return admin


async def stop(admin: ModelAdmin) -> None:
    await admin.stop()


CONTEXT = Context(name="models", start=start, stop=stop, routers=(router,))
