"""momentum: the streak of consecutive days (in the user's time zone) with at least one completed task."""

from __future__ import annotations

from datetime import timedelta

from hearth.tips.agentkit import AgentInput, AgentResult, Line


def run(inp: AgentInput) -> AgentResult | None:
    done = [t.completed_at for t in inp.signals.get("task.completed", []) if t.completed_at is not None]
    week_ago = inp.now - timedelta(days=7)
    recent = [at for at in done if at >= week_ago]
    days = {at.astimezone(inp.timezone).date() for at in done}
    today = inp.local_now().date()
    # A streak still counts when today has nothing yet: it is alive until the day ends.
    day = today if today in days else today - timedelta(days=1)
    streak = 0
    while day in days:
        streak += 1
        day -= timedelta(days=1)
    if not recent and not streak:
        line = "No tasks completed in the last 7 days; one small task would restart the momentum."
    elif streak >= 2:
        line = f"{streak}-day streak: {len(recent)} tasks completed this week. Keep it going."
    else:
        line = f"{len(recent)} tasks completed in the last 7 days."
    return AgentResult([Line(line)], {"streak_days": streak, "completed_7d": len(recent)})
