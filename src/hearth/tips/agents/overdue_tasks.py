"""overdue-tasks: open tasks whose due date has passed, the most overdue (then highest priority) first."""

from __future__ import annotations

from hearth.tips.agentkit import AgentInput, AgentResult, Line

SHOWN = 5


def run(inp: AgentInput) -> AgentResult | None:
    overdue = [t for t in inp.signals.get("task.open", []) if t.due_at is not None and t.due_at < inp.now]
    if not overdue:
        return None
    overdue.sort(key=lambda t: (t.due_at, -t.priority))
    lines, tasks = [], []
    for task in overdue[:SHOWN]:
        days = (inp.now - task.due_at).days
        when = "today" if days == 0 else ("1 day ago" if days == 1 else f"{days} days ago")
        where = f" in {task.project}" if task.project else ""
        lines.append(Line(f'"{task.title}"{where} was due {when}.', ref=task.ref, title=task.title))
        tasks.append({"ref": task.ref, "title": task.title, "days_overdue": days})
    # More overdue work, more urgent: up to +10 over the manifest's priority.
    return AgentResult(lines, {"count": len(overdue), "tasks": tasks}, priority=90 + min(10, len(overdue)))
