"""What the usage context offers: its ledger, for its own routes."""

from __future__ import annotations

from hearth.platform.ports import Port
from hearth.usage.ledger import UsageLedger

SERVICE: Port[UsageLedger] = Port("usage.service")
