"""focus-area: the project holding most of the user's open tasks, and the task to take next there
(earliest due, then highest priority)."""

from __future__ import annotations

from collections import Counter
from datetime import UTC, datetime

from hearth.tips.agentkit import AgentInput, AgentResult, Line

_LAST = datetime.max.replace(tzinfo=UTC)


def run(inp: AgentInput) -> AgentResult | None:
    tasks = inp.signals.get("task.open", [])
    if len(tasks) < 2:
        return None
    counts = Counter(t.project or "Inbox" for t in tasks)
    project, n = min(counts.items(), key=lambda kv: (-kv[1], kv[0]))
    in_project = [t for t in tasks if (t.project or "Inbox") == project]
    nxt = min(in_project, key=lambda t: (t.due_at or _LAST, -t.priority, t.title))
    lines = [
        Line(f"{n} of {len(tasks)} open tasks are in {project}."),
        Line(f'Next in {project}: "{nxt.title}".', ref=nxt.ref, title=nxt.title),
    ]
    data = {"project": project, "open_in_project": n, "open_total": len(tasks), "next_ref": nxt.ref}
    return AgentResult(lines, data)
