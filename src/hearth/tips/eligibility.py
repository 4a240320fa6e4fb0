"""Eligibility = enabled ∧ consents granted ∧ not silenced by the active context (freshness is the
outputs' `expires_at`, checked where they are read)."""

from __future__ import annotations

from hearth.tips.manifest import Agent
from hearth.tips.profile import Snapshot


def why_not(agent: Agent, snap: Snapshot) -> str | None:
    """None when `agent` may run for and contribute to this user now, else the reason it may not."""
    m = agent.manifest
    if not m.enabled:
        return "disabled in its manifest"
    if m.id in snap.preferences.disabled_agents:
        return "disabled in your preferences"
    for key in m.consents:
        if key not in snap.granted:
            return f"needs consent {key}"
    if snap.active_context is not None and snap.active_context in m.silenced_by:
        return f"silenced by context {snap.active_context!r}"
    return None
