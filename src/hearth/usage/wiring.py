"""How the usage context plugs into the platform (see hearth.platform.core): the ledger consumes
InferenceUsage events, exactly once per event through the bus's idempotency ledger."""

from __future__ import annotations

from hearth.auth.ports import USERS
from hearth.gateway.events import InferenceUsage
from hearth.platform.core import Context, Platform
from hearth.usage import ports
from hearth.usage.api import router
from hearth.usage.ledger import CONSUMER, UsageLedger


async def start(platform: Platform) -> UsageLedger:
    ledger = UsageLedger(db=platform.db, users=platform.ports.require(USERS))
    platform.bus.subscribe(
        CONSUMER,
        ledger.record,
        contexts={InferenceUsage.context},
        types={InferenceUsage.type_name()},
        idempotent=True,
    )
    platform.personal_data.register(ledger)
    platform.ports.provide(ports.SERVICE, ledger)
    return ledger


CONTEXT = Context(name="usage", start=start, routers=(router,))
