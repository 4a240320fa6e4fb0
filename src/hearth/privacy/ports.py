"""What the privacy context offers: its service, for its own routes."""

from __future__ import annotations

from typing import TYPE_CHECKING

from hearth.platform.ports import Port

if TYPE_CHECKING:
    from hearth.privacy.service import PrivacyService

SERVICE: Port[PrivacyService] = Port("privacy.service")
