"""Pipelines for the workflow tests and bench/workflows.py
(HEARTH_WORKFLOWS_MODULES=tests.workflow_pipelines).
Declared as users declare theirs: module-level `Pipeline` objects with decorated steps."""

from __future__ import annotations

import asyncio
import os
import time
from pathlib import Path
from typing import Any

from hearth.workflows import Param, Pipeline, StepContext

# Five no-op steps, a diamond: a → (b, c) → d → e. The scheduling benchmark runs it.
noop5 = Pipeline("noop5", description="five steps that do nothing")


@noop5.step()
async def a(ctx: StepContext) -> None:
    return None


@noop5.step(after=[a])
async def b(ctx: StepContext) -> None:
    return None


@noop5.step(after=[a])
async def c(ctx: StepContext) -> None:
    return None


@noop5.step(after=[b, c])
async def d(ctx: StepContext) -> None:
    return None


@noop5.step(after=[d])
async def e(ctx: StepContext) -> None:
    return None


# Data through a child-process step and an inline step: outputs, an artifact, logs and a metric.
demo = Pipeline(
    "demo",
    version="2",
    params={"n": Param(int, default=3), "word": Param(str, default="hearth")},
    metrics={"letters": "max"},
)


@demo.step(outputs={"count": int}, artifacts={"words": "dataset"})
def produce(ctx: StepContext) -> dict[str, Any]:
    """Write n words (in a child process)."""
    lines = [f"{ctx.params['word']}-{i}" for i in range(ctx.params["n"])]
    ctx.artifact_path("words").write_text("\n".join(lines) + "\n")
    print(f"produced {len(lines)} words")
    return {"count": len(lines)}


@demo.step(after=[produce], outputs={"letters": int})
async def consume(ctx: StepContext) -> dict[str, Any]:
    """Count the letters of the words the first step wrote."""
    words = ctx.input_path("produce.words").read_text().split()
    assert len(words) == ctx.upstream["produce"]["count"]
    letters = sum(len(w) for w in words)
    ctx.log(f"{len(words)} words, {letters} letters")
    ctx.metric("letters", letters)
    return {"letters": letters}


# Fails its first attempt, succeeds on the retry.
flaky = Pipeline("flaky")


@flaky.step(retries=2)
async def wobble(ctx: StepContext) -> dict[str, Any]:
    if ctx.attempt == 1:
        raise ConnectionError("upstream went away")
    return {"attempt": ctx.attempt}


# Crashes every time, in a child process; the step after it never runs.
crashy = Pipeline("crashy")


@crashy.step(retries=1)
def explode(ctx: StepContext) -> None:
    print("about to divide")
    1 / 0  # noqa: B018


@crashy.step(after=[explode])
async def never(ctx: StepContext) -> None:
    raise AssertionError("must not run")


# Steps that hang past their timeout: a child process (killed) and an inline coroutine (cancelled).
hangs = Pipeline("hangs", params={"inline": Param(bool, default=False)})


@hangs.step(timeout=1.0)
async def pick(ctx: StepContext) -> dict[str, Any]:
    return {"inline": ctx.params["inline"]}


@hangs.step(after=[pick], timeout=1.0)
def hang_child(ctx: StepContext) -> None:
    Path(ctx.workdir.parent.parent / f"{ctx.run_id}.pid").write_text(str(os.getpid()))
    time.sleep(120)


@hangs.step(after=[pick], timeout=1.0)
async def hang_inline(ctx: StepContext) -> None:
    await asyncio.sleep(120)


# Sleeps `seconds` in a child process (cancel and crash-restart tests); retries as asked.
slow = Pipeline("slow", params={"seconds": Param(float, default=30.0), "marker": Param(str, default="")})


@slow.step(retries=1)
def nap(ctx: StepContext) -> dict[str, Any]:
    if ctx.params["marker"]:
        with open(ctx.params["marker"], "a") as f:
            f.write(f"{ctx.run_id} {ctx.attempt}\n")
    time.sleep(ctx.params["seconds"])
    return {"slept": ctx.params["seconds"]}


# Reads an artifact given as a parameter (which `vanish` deletes first, as if someone removed it).
reader = Pipeline("reader", params={"source": Param("artifact"), "vanish": Param(bool, default=False)})


@reader.step()
async def prepare(ctx: StepContext) -> None:
    if ctx.params["vanish"]:
        await asyncio.to_thread(Path(ctx.params["source"].removeprefix("file://")).unlink)


@reader.step(after=[prepare], outputs={"bytes": int})
async def read(ctx: StepContext) -> dict[str, Any]:
    return {"bytes": len(ctx.input_path("params.source").read_bytes())}


# Records each execution of each step (run, step) in a file: the two-server test counts them.
tally = Pipeline("tally", params={"log": Param(str)})


def _append(path: str, line: str) -> None:
    with open(path, "a") as f:
        f.write(line)


async def _tally(ctx: StepContext) -> None:
    line = f"{ctx.run_id} {ctx.step} {ctx.attempt} {os.getpid()}\n"
    await asyncio.to_thread(_append, ctx.params["log"], line)
    await asyncio.sleep(0.1)  # long enough that both servers get work


@tally.step()
async def t1(ctx: StepContext) -> None:
    await _tally(ctx)


@tally.step(after=[t1])
async def t2(ctx: StepContext) -> None:
    await _tally(ctx)


@tally.step(after=[t1])
async def t3(ctx: StepContext) -> None:
    await _tally(ctx)
