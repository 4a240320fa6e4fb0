"""How the audit context plugs into the platform (see hearth.platform.core): the log consumes admin-action
events of the auth, rag and planner contexts, exactly once per event through the bus's idempotency ledger."""

from __future__ import annotations

from hearth.audit import ports
from hearth.audit.actions import AUDITED
from hearth.audit.api import router
from hearth.audit.log import CONSUMER, AuditLog
from hearth.audit.personal_data import AuditPersonalData
from hearth.auth.ports import USERS
from hearth.platform.core import Context, Platform


async def start(platform: Platform) -> AuditLog:
    log = AuditLog(db=platform.db, users=platform.ports.require(USERS))
    platform.bus.subscribe(
        CONSUMER,
        log.record,
        contexts={cls.context for cls in AUDITED},
        types={cls.type_name() for cls in AUDITED},
        idempotent=True,
    )
    platform.personal_data.register(AuditPersonalData(platform.db, platform.ports.require(USERS)))
    platform.ports.provide(ports.SERVICE, log)
    return log


CONTEXT = Context(name="audit", start=start, routers=(router,))
