"""The screens in the navigation bar. A new screen (voice, planner, bench, tips, workflows, agents) adds one
entry here, one route in its own module under web/ (see pages.py), one template and one ES module."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Screen:
    path: str
    label: str
    admin: bool = False  # shown to (and served to) admins only


# Everyone's screens first, then the admin's; the bar wraps on narrow screens.
SCREENS: tuple[Screen, ...] = (
    Screen("/chat", "Chat"),
    Screen("/voice", "Voice"),
    Screen("/documents", "Documents"),
    Screen("/agents", "Agents"),
    Screen("/workflows", "Workflows"),
    Screen("/tips", "Tips"),
    Screen("/planner", "Planner"),
    Screen("/bench", "Bench", admin=True),
    Screen("/admin/models", "Models", admin=True),
    Screen("/admin/usage", "Usage", admin=True),
    Screen("/notifications", "Notifications"),
    Screen("/admin/keys", "API keys", admin=True),
    Screen("/admin/users", "Users", admin=True),
)
