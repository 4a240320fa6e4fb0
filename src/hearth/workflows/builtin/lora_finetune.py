"""Built-in pipeline `lora-finetune`: a JSONL of chat examples → LoRA training of the embedded SmolLM2-135M on
CPU (hearth.finetune, the `hearth[train]` extra) → the GGUF adapter as an artifact → served by the gateway
under a new alias → the evaluation: held-out loss before and after, and the base and tuned answers to
held-out prompts (llama.cpp with the adapter, the engine the alias serves with).

Admins only: serving changes the model catalogue every user sees, as `/api/admin/models` does."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import orjson

from hearth.gateway.ports import ALIASES, SERVICE
from hearth.workflows.pipeline import Param, Pipeline, StepContext

pipeline = Pipeline(
    "lora-finetune",
    version="1",
    description="Fine-tune the embedded chat model with LoRA on chat examples; serve it under a new alias.",
    params={
        "data": Param("artifact", help='URI of a JSONL of {"messages": [...]} chat examples'),
        "alias": Param(
            str, help="the alias that serves the tuned model (a new name, or one it served before)"
        ),
        "steps": Param(int, default=30, help="training steps"),
        "batch_size": Param(int, default=8),
        "learning_rate": Param(float, default=2e-3),
        "rank": Param(int, default=16, help="LoRA rank"),
        "held_out": Param(float, default=0.2, help="share of the examples kept out of training"),
        "eval_prompts": Param(int, default=3, help="held-out prompts answered by the base and tuned model"),
    },
    metrics={"held_out_loss_after": "min", "train_loss_after": "min", "held_out_loss_drop": "max"},
    admin_only=True,
)


@pipeline.step(
    outputs={"train_examples": int, "held_out_examples": int, "answers": list},
    artifacts={"adapter.gguf": "model", "result.json": "report"},
    timeout=6 * 3600,
)
def train(ctx: StepContext) -> dict[str, Any]:
    """Train the adapter (a child process: torch's CPU work never blocks the server) and evaluate it."""
    try:
        from hearth.finetune.runner import FinetuneConfig, run_finetune
        from hearth.finetune.train import TrainSettings
    except ImportError as exc:  # the training stack is an optional extra
        raise RuntimeError(f"{exc}; install the training stack: pip install 'hearth[train]'") from None
    p = ctx.params
    if not 0 < p["held_out"] < 1:
        raise ValueError("held_out must be between 0 and 1")
    config = FinetuneConfig(
        alias=p["alias"],
        out_dir=ctx.workdir / "finetune",
        data=ctx.input_path("params.data"),
        train=TrainSettings(
            steps=p["steps"], batch_size=p["batch_size"], learning_rate=p["learning_rate"], rank=p["rank"]
        ),
        held_out=p["held_out"],
        eval_prompts=p["eval_prompts"],
    )
    ctx.log(f"training a LoRA adapter for {p['alias']!r}: {p['steps']} steps, batch {p['batch_size']}")
    result = run_finetune(config)
    shutil.copyfile(result.adapter, ctx.artifact_path("adapter.gguf"))
    ctx.artifact_path("result.json").write_bytes(orjson.dumps(result.to_dict(), option=orjson.OPT_INDENT_2))
    ctx.metric("train_loss_before", result.train_loss_before)
    ctx.metric("train_loss_after", result.train_loss_after)
    ctx.metric("held_out_loss_before", result.held_out_loss_before)
    ctx.metric("held_out_loss_after", result.held_out_loss_after)
    ctx.metric("held_out_loss_drop", result.held_out_loss_before - result.held_out_loss_after)
    ctx.log(
        f"held-out loss {result.held_out_loss_before:.3f} → {result.held_out_loss_after:.3f}, "
        f"train loss {result.train_loss_before:.3f} → {result.train_loss_after:.3f}"
    )
    return {
        "train_examples": result.train_examples,
        "held_out_examples": result.held_out_examples,
        "answers": [a.as_dict() for a in result.answers],
    }


def _adapters_dir(ctx: StepContext) -> Path:
    # A step's work folder is <data dir>/workflows/work/…, cleaned after the run; the served adapter must
    # outlive it, so it goes to <data dir>/adapters/.
    for parent in ctx.workdir.parents:
        if parent.name == "workflows":
            return parent.parent / "adapters"
    return ctx.workdir.parent / "adapters"


@pipeline.step(after=[train], outputs={"alias": str, "adapter": str})
async def serve(ctx: StepContext) -> dict[str, Any]:
    """Serve base + adapter under the alias through the run-time model admin (stored, audited)."""
    from hearth.finetune.serve import AliasTaken, serve_with

    admin = ctx.ports.find(SERVICE) if ctx.ports is not None else None
    if admin is None:
        raise RuntimeError("the gateway's model admin is not running in this server")
    alias = ctx.params["alias"]
    folder = _adapters_dir(ctx)
    folder.mkdir(parents=True, exist_ok=True)
    adapter = folder / f"{alias}-{ctx.run_id}.lora.gguf"
    shutil.copyfile(ctx.input_path("train.adapter.gguf"), adapter)
    try:
        await serve_with(admin, alias, adapter, actor=f"workflow run {ctx.run_id}")
    except AliasTaken as exc:
        adapter.unlink(missing_ok=True)
        raise RuntimeError(str(exc)) from None
    registry = ctx.ports.find(ALIASES)
    if registry is None or not registry.has_alias(alias):
        raise RuntimeError(f"the gateway does not serve {alias!r} after the change")
    ctx.log(f"{alias!r} now serves SmolLM2-135M + {adapter.name}")
    return {"alias": alias, "adapter": str(adapter)}
