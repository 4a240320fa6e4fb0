"""How the notify context plugs into the platform (see hearth.platform.core): provides `Notifier`, runs
the worker that sends deferred and retried deliveries, and registers its personal data."""

from __future__ import annotations

from datetime import timedelta

from hearth.notify import ports
from hearth.notify.api import router
from hearth.notify.channels import SmtpEmail, WebPush
from hearth.notify.personal_data import NotifyPersonalData
from hearth.notify.service import NotifyService
from hearth.notify.vapid import load_or_create, public_key
from hearth.platform.core import Context, Platform
from hearth.platform.retention import RetentionRule


async def start(platform: Platform) -> NotifyService:
    settings = platform.settings
    vapid = load_or_create(settings.data_dir / "notify")
    service = NotifyService(
        db=platform.db,
        bus=platform.bus,
        settings=settings,
        email=SmtpEmail(settings),
        push=WebPush(vapid, subject=settings.notify_vapid_subject),
        vapid_public_key=public_key(vapid),
    )
    service.start()
    platform.retention.register(
        RetentionRule("notify.notifications", timedelta(days=settings.notify_retention_days), service.sweep)
    )
    platform.personal_data.register(NotifyPersonalData(platform.db))
    platform.ports.provide(ports.NOTIFIER, service)
    platform.ports.provide(ports.SERVICE, service)
    return service


async def stop(service: NotifyService) -> None:
    await service.stop()


CONTEXT = Context(name="notify", start=start, stop=stop, routers=(router,))
