"""Owner-scoped reads of runs and experiments (another user's id is "not found")."""

from __future__ import annotations

from hearth.platform.kit.repository import OwnedRepository
from hearth.workflows.models import Experiment, Run


class RunRepository(OwnedRepository[Run]):
    model = Run
    noun = "run"
    param = "run_id"
    owner_column_name = "owner_id"


class ExperimentRepository(OwnedRepository[Experiment]):
    model = Experiment
    noun = "experiment"
    param = "experiment_id"
    owner_column_name = "owner_id"
