"""The outbox's retention rule: delivered events and the consumers' idempotency ledger are pruned by age,
so neither table grows with every request for as long as the platform runs."""

from __future__ import annotations

from datetime import datetime, timedelta

from hearth.events import outbox
from hearth.events.nats_relay import STREAM_MAX_AGE
from hearth.platform.db import Database
from hearth.platform.retention import RetentionRule

# A new durable JetStream consumer replays the stream's last STREAM_MAX_AGE; its ledger entries must outlive
# that, or a replayed event would be handled twice. A day's margin covers clocks and a slow sweep.
LEDGER_MIN_AGE = timedelta(seconds=STREAM_MAX_AGE) + timedelta(days=1)


def outbox_rule(db: Database, days: float) -> RetentionRule:
    """Dispatched outbox rows older than `days` go; ledger entries older than `days` or LEDGER_MIN_AGE,
    whichever is longer."""
    max_age = timedelta(days=days)

    async def sweep(cutoff: datetime) -> int:
        now = cutoff + max_age
        return await outbox.prune(
            db, dispatched_before=cutoff, consumed_before=min(cutoff, now - LEDGER_MIN_AGE)
        )

    return RetentionRule("events.outbox", max_age, sweep)
