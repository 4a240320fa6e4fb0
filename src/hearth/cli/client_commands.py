"""What the commands that talk to a running Hearth server share (kept for their imports; see cli.http)."""

from __future__ import annotations

from rich.console import Console

from hearth.cli.http import KEY_OPTION, URL_OPTION, endpoint, fail_with

__all__ = ["KEY_OPTION", "URL_OPTION", "console", "endpoint", "fail_with"]

console = Console()
