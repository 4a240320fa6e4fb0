"""The workflows context offers no port to other contexts yet; `SERVICE` is for its own routes and CLI."""

from __future__ import annotations

from typing import TYPE_CHECKING

from hearth.platform.ports import Port

if TYPE_CHECKING:
    from hearth.workflows.service import WorkflowService

SERVICE: Port[WorkflowService] = Port("workflows.service")
