"""The voice context offers no port to other contexts; `SERVICE` is for its own routes."""

from __future__ import annotations

from typing import TYPE_CHECKING

from hearth.platform.ports import Port

if TYPE_CHECKING:
    from hearth.voice.service import VoiceService

SERVICE: Port[VoiceService] = Port("voice.service")
