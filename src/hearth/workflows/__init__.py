"""The workflows context: pipelines declared in Python, runs with a strict state machine, steps with
retries and timeouts, artifacts by URI, experiments, a local executor and Argo Workflows (docs/workflows.md).

    from hearth.workflows import Param, Pipeline, StepContext
"""

from hearth.workflows.pipeline import Param, Pipeline, PipelineError, StepContext

__all__ = ["Param", "Pipeline", "PipelineError", "StepContext"]
