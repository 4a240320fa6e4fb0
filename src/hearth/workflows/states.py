"""The run and step state machines, enforced in this one place: every status change goes through
`transition`, and an illegal one raises `IllegalTransition` (a bug, or a race another worker won)."""

from __future__ import annotations

from typing import Any

RUN_TRANSITIONS: dict[str, frozenset[str]] = {
    "pending": frozenset({"running", "cancelled", "failed"}),
    "running": frozenset({"succeeded", "failed", "cancelled"}),
    "succeeded": frozenset(),
    "failed": frozenset(),
    "cancelled": frozenset(),
}

# A step is `ready` when every step it comes after has succeeded; `running` → `ready` is a retry (or a
# resume after its worker died); `skipped`: it never ran because the run ended first.
STEP_TRANSITIONS: dict[str, frozenset[str]] = {
    "pending": frozenset({"ready", "skipped", "cancelled"}),
    "ready": frozenset({"running", "skipped", "cancelled"}),
    "running": frozenset({"succeeded", "failed", "ready", "cancelled"}),
    "succeeded": frozenset(),
    "failed": frozenset(),
    "skipped": frozenset(),
    "cancelled": frozenset(),
}

RUN_TERMINAL = frozenset(s for s, nxt in RUN_TRANSITIONS.items() if not nxt)
STEP_TERMINAL = frozenset(s for s, nxt in STEP_TRANSITIONS.items() if not nxt)


class IllegalTransition(RuntimeError):
    def __init__(self, kind: str, current: str, target: str) -> None:
        super().__init__(f"illegal {kind} transition {current} → {target}")
        self.kind, self.current, self.target = kind, current, target


def check(kind: str, current: str, target: str) -> None:
    """Raise `IllegalTransition` unless `kind` ("run" or "step") may go from `current` to `target`."""
    table = RUN_TRANSITIONS if kind == "run" else STEP_TRANSITIONS
    if current not in table:
        raise IllegalTransition(kind, current, target)
    if target not in table[current]:
        raise IllegalTransition(kind, current, target)


def transition(row: Any, target: str) -> None:
    """Move a run or step row (anything with `status`; steps have `run_id`) to `target`, or raise."""
    kind = "step" if hasattr(row, "run_id") else "run"
    check(kind, row.status, target)
    row.status = target
