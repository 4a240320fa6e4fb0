"""The screens in the navigation bar. A new screen (voice, planner, bench, tips, workflows, agents) adds one
entry here, one route in its own module under web/ (see pages.py), one template and one ES module."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Screen:
    path: str
    label: str
    admin: bool = False  # shown to (and served to) admins only


SCREENS: tuple[Screen, ...] = (
    Screen("/chat", "Chat"),
    Screen("/documents", "Documents"),
    Screen("/workflows", "Workflows"),
    Screen("/admin/keys", "API keys", admin=True),
    Screen("/admin/users", "Users", admin=True),
)
