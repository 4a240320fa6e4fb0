"""Which pipelines a server knows: the built-in ones, plus those of the modules named in
`HEARTH_WORKFLOWS_MODULES`. A module contributes every `Pipeline` object defined at its top level.

Adding a built-in pipeline is one line here (its module) and the module itself; see docs/workflows.md."""

from __future__ import annotations

import importlib

from hearth.workflows.pipeline import Pipeline, PipelineError

BUILTIN_MODULES: tuple[str, ...] = (
    "hearth.workflows.builtin.rag_eval",  # RAG evaluation → an experiment
    "hearth.workflows.builtin.bench_sweep",  # bench sweep → the planner's knowledge base
    "hearth.workflows.builtin.lora_finetune",  # LoRA fine-tuning → a served alias (needs hearth[train])
)


def pipelines_in(module_name: str) -> list[Pipeline]:
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise PipelineError(f"cannot import pipeline module {module_name!r}: {exc}") from None
    found = [v for v in vars(module).values() if isinstance(v, Pipeline)]
    if not found:
        raise PipelineError(f"module {module_name!r} defines no Pipeline at its top level")
    return found


def load_pipelines(extra_modules: str | list[str] = "") -> dict[str, Pipeline]:
    """name → pipeline, from the built-in modules and `extra_modules` (comma-separated or a list); each
    is checked (cycles, unknown steps). Two pipelines with one name are an error."""
    names = [*BUILTIN_MODULES]
    extra = extra_modules.split(",") if isinstance(extra_modules, str) else extra_modules
    names += [m.strip() for m in extra if m.strip()]
    out: dict[str, Pipeline] = {}
    for module_name in dict.fromkeys(names):
        for pipeline in pipelines_in(module_name):
            pipeline.check()
            if pipeline.name in out and out[pipeline.name] is not pipeline:
                raise PipelineError(f"two pipelines are named {pipeline.name!r} (in {module_name})")
            out[pipeline.name] = pipeline
    return out
