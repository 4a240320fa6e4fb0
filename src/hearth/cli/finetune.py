"""`hearth finetune`: LoRA fine-tuning of the embedded chat model on a JSONL of chat examples, then serving
the adapter under a new alias. The training stack (torch, transformers, peft, gguf) is the optional
`hearth[train]` extra and is imported only when the command runs, so `hearth --help` stays fast without it."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any, NoReturn

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from hearth import home
from hearth.cli.http import KEY_OPTION, URL_OPTION
from hearth.cli.main import app

console = Console()
err = Console(stderr=True)
_NAME_CHARS = set("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789._:-")


def _fail(message: str) -> NoReturn:
    err.print(f"[red]error:[/red] {escape(message)}", soft_wrap=True, highlight=False)
    raise typer.Exit(1)


@app.command()
def finetune(
    data: Path = typer.Option(
        ..., "--data", help='A JSONL file, one {"messages": [{"role", "content"}, …]} conversation per line.'
    ),
    alias: str = typer.Option(..., "--alias", help="The alias that will serve the fine-tuned model."),
    steps: int = typer.Option(30, "--steps", min=1, help="Training steps (one mini-batch each)."),
    learning_rate: float = typer.Option(2e-3, "--learning-rate", min=0.0, help="AdamW learning rate."),
    rank: int = typer.Option(16, "--rank", min=1, help="LoRA rank (alpha is twice the rank)."),
    batch_size: int = typer.Option(8, "--batch-size", min=1, help="Examples per step."),
    max_tokens: int = typer.Option(384, "--max-tokens", min=16, help="Longest example in tokens."),
    held_out: float = typer.Option(
        0.2, "--held-out", help="Share of the examples kept out of training to measure held-out loss."
    ),
    seed: int = typer.Option(0, "--seed", help="Seed of the split, the shuffling and the LoRA init."),
    threads: int | None = typer.Option(None, "--threads", min=1, help="CPU threads for training."),
    base_model: Path | None = typer.Option(
        None, "--base-model", help="A llama GGUF to start from (default: the shipped SmolLM2-135M)."
    ),
    out: Path | None = typer.Option(
        None, "--out", help="Output folder (default: <home>/finetune/<alias>-<time>)."
    ),
    eval_prompts: int = typer.Option(
        3, "--eval-prompts", min=0, help="Held-out prompts the base and the tuned model answer."
    ),
    serve: bool = typer.Option(
        True,
        "--serve/--no-serve",
        help="Add the alias to the running server (admin key); without one, print the hearth.yaml lines.",
    ),
    as_json: bool = typer.Option(False, "--json", help="Print the result as JSON."),
    url: str | None = URL_OPTION,
    api_key: str | None = KEY_OPTION,
) -> None:
    """Fine-tune the embedded SmolLM2-135M with LoRA on CPU, convert the adapter for llama.cpp, compare
    held-out loss and answers before and after, and serve it as ALIAS. Needs the training extra:
    `pip install 'hearth\\[train]'`."""
    if not alias or len(alias) > 100 or not set(alias) <= _NAME_CHARS:
        raise typer.BadParameter("1-100 letters, digits or . _ : -", param_hint="--alias")
    if not 0 < held_out < 1:
        raise typer.BadParameter("a share between 0 and 1, e.g. 0.2", param_hint="--held-out")
    # Only light modules here: the data is checked, and the extra looked for, before torch is imported.
    from hearth.finetune.data import DataError, load_jsonl
    from hearth.finetune.runner import FinetuneConfig, MissingTrainExtra, check_train_extra, run_finetune
    from hearth.finetune.train import TrainSettings

    try:
        examples = load_jsonl(data)
        check_train_extra()
    except (DataError, MissingTrainExtra) as exc:
        _fail(str(exc))
    if base_model is not None and not base_model.is_file():
        _fail(f"{base_model}: no such file (--base-model takes a llama-architecture .gguf)")
    out_dir = out or home.hearth_home() / "finetune" / f"{alias}-{time.strftime('%Y%m%d-%H%M%S')}"
    settings = TrainSettings(
        steps=steps, learning_rate=learning_rate, rank=rank, alpha=2.0 * rank, batch_size=batch_size,
        max_tokens=max_tokens, seed=seed, threads=threads,
    )  # fmt: skip
    config = FinetuneConfig(
        alias=alias, out_dir=out_dir, examples=examples, base_model=base_model, train=settings,
        held_out=held_out, eval_prompts=eval_prompts,
    )  # fmt: skip

    def step(n: int, loss: float) -> None:
        if not as_json:
            err.print(f"step {n}/{steps}  loss {loss:.3f}", highlight=False)

    if not as_json:
        err.print(
            f"training on {len(examples)} examples from {escape(str(data))} (output: {escape(str(out_dir))})",
            soft_wrap=True,
        )
    from hearth.finetune.base import BaseModelError

    try:
        result = run_finetune(config, on_step=step)
    except (DataError, BaseModelError) as exc:
        _fail(str(exc))
    report = result.to_dict()
    report["served"] = _serve(alias, result.adapter, url, api_key, quiet=as_json) if serve else False
    if as_json:
        typer.echo(json.dumps(report, indent=2))
    else:
        _print(report)


def _serve(alias: str, adapter: Path, url: str | None, api_key: str | None, *, quiet: bool) -> bool:
    """Add the alias through the server's model admin; True when it serves it now."""
    import httpx

    from hearth.cli.http import endpoint, unreachable_message
    from hearth.finetune import serve

    try:
        base, headers = endpoint(url, api_key)
        with httpx.Client(base_url=base, headers=headers, timeout=httpx.Timeout(10, read=120)) as client:
            serve.serve_over_http(client, alias, adapter)
    except typer.BadParameter as exc:  # no API key: nothing to talk to
        problem = exc.message
    except httpx.TransportError as exc:
        problem = unreachable_message(exc).removeprefix("error: ")
    except serve.AliasTaken as exc:
        problem = str(exc)
    except httpx.HTTPStatusError as exc:
        try:
            problem = exc.response.json()["error"]["message"]
        except Exception:
            problem = exc.response.text[:300]
    else:
        if not quiet:
            console.print(f"[green]alias {escape(alias)} is served now[/] (stored: it survives restarts)")
        return True
    if not quiet:
        err.print(f"[yellow]not served:[/] {escape(problem)}", soft_wrap=True, highlight=False)
        err.print("Add these lines to hearth.yaml (or run with --url/--api-key of a running server):")
        err.print(escape(serve.yaml_snippet(alias, adapter)), highlight=False)
    return False


def _print(report: dict[str, Any]) -> None:
    table = Table("", "before", "after", title=f"LoRA fine-tune: {escape(report['alias'])}")
    table.add_row(
        f"training loss ({report['train_examples']} examples)",
        f"{report['train_loss_before']:.3f}",
        f"{report['train_loss_after']:.3f}",
    )
    table.add_row(
        f"held-out loss ({report['held_out_examples']} examples)",
        f"{report['held_out_loss_before']:.3f}",
        f"{report['held_out_loss_after']:.3f}",
    )
    console.print(table)
    for answer in report["answers"]:
        console.print(f"[bold]prompt:[/] {escape(answer['prompt'])}", highlight=False)
        console.print(f"  expected: {escape(answer['expected'])}", highlight=False)
        console.print(f"  base:     {escape(answer['base'])}", highlight=False)
        console.print(f"  tuned:    {escape(answer['tuned'])}", highlight=False)
    t = report["timings"]
    console.print(
        f"adapter: {escape(report['adapter'])}\n"
        f"llama.cpp with the adapter predicts the trained model's next token "
        f"{report['served_agreement']:.0%} of the time\n"
        f"time: load {t['load']:.1f} s, train {t['train']:.1f} s ({t['steps_per_second']:.2f} steps/s), "
        f"export {t['export']:.1f} s, answers {t['eval']:.1f} s",
        highlight=False,
        soft_wrap=True,
    )
