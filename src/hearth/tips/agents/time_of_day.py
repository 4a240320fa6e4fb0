"""time-of-day: the user's local time, part of day and whether it falls in their work hours (weekdays)."""

from __future__ import annotations

from hearth.tips.agentkit import AgentInput, AgentResult, Line


def _part(hour: int) -> str:
    if 5 <= hour < 12:
        return "morning"
    if 12 <= hour < 17:
        return "afternoon"
    if 17 <= hour < 22:
        return "evening"
    return "night"


def run(inp: AgentInput) -> AgentResult | None:
    local = inp.local_now()
    clock = local.time().replace(second=0, microsecond=0)
    working = local.weekday() < 5 and inp.work_start <= clock < inp.work_end
    part = _part(local.hour)
    weekday = local.strftime("%A")
    hours = f"{inp.work_start:%H:%M}-{inp.work_end:%H:%M}"
    where = f"inside work hours ({hours})" if working else f"outside work hours ({hours})"
    line = f"It is {weekday} {part}, {local:%H:%M} local time, {where}."
    data = {"local_time": f"{local:%H:%M}", "weekday": weekday, "in_work_hours": working, "part_of_day": part}
    return AgentResult([Line(line)], data)
