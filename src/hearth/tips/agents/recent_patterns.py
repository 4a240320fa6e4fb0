"""recent-patterns: counts of the user's reactions to tips over the last 14 days."""

from __future__ import annotations

from datetime import timedelta

from hearth.tips.agentkit import AgentInput, AgentResult, Line


def run(inp: AgentInput) -> AgentResult | None:
    since = inp.now - timedelta(days=14)
    recent = [f for f in inp.signals.get("tip.feedback", []) if f.at >= since]
    if not recent:
        return None
    counts = {"done": 0, "snooze": 0, "dismiss": 0}
    for f in recent:
        counts[f.action] = counts.get(f.action, 0) + 1
    dismissed = sorted({f.subject for f in recent if f.action == "dismiss" and f.subject})[:5]
    lines = [
        Line(
            f"Last 14 days: {counts['done']} tips done, {counts['snooze']} snoozed, "
            f"{counts['dismiss']} dismissed."
        )
    ]
    if dismissed:
        lines.append(Line("Avoid suggesting again: " + "; ".join(dismissed) + "."))
    return AgentResult(lines, {**counts, "dismissed_subjects": dismissed})
