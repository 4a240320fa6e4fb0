"""What the audit context offers: its log, for its own routes."""

from __future__ import annotations

from hearth.audit.log import AuditLog
from hearth.platform.ports import Port

SERVICE: Port[AuditLog] = Port("audit.service")
