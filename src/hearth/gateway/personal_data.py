"""The gateway's part of a user's personal data: nothing stored, only the usage it sums in memory for a
couple of seconds (and per-request events not yet written) before publishing them. Erasure drops those,
so a usage window of the erased user is never published after the usage ledger forgot them."""

from __future__ import annotations

from hearth.gateway.service import Gateway
from hearth.platform.personal_data import Rows


class GatewayPersonalData:
    context = "gateway"

    def __init__(self, gateway: Gateway) -> None:
        self.gateway = gateway

    async def export_user(self, user_id: str) -> Rows:
        return {}  # in memory for seconds; the usage context exports what was recorded

    async def erase_user(self, user_id: str) -> None:
        if self.gateway.events is not None:
            self.gateway.events.forget(user_id)
