"""The workflow state machine and declarations, and the engine on SQLite and PostgreSQL: illegal transitions
raise; cycles and unknown steps are refused at declaration; competing workers claim each step once; a step
whose worker died is resumed (retries left) or failed (none left), never left running."""

from __future__ import annotations

import asyncio
from datetime import timedelta
from types import SimpleNamespace

import pytest
from sqlalchemy import select

from hearth.auth.service import AuthService
from hearth.events.bus import EventBus
from hearth.platform.kit.time import utcnow
from hearth.workflows import Param, Pipeline, PipelineError, states
from hearth.workflows.artifacts import ArtifactStore, LocalBackend
from hearth.workflows.engine import Engine, Outcome
from hearth.workflows.models import Run, StepRow
from hearth.workflows.pipeline import coerce_params
from hearth.workflows.registry import load_pipelines
from hearth.workflows.schemas import RunCreate
from hearth.workflows.service import WorkflowService

# -- the state machine ---------------------------------------------------------------------------------


def test_run_transitions_follow_the_state_machine() -> None:
    run = SimpleNamespace(status="pending")
    states.transition(run, "running")
    states.transition(run, "succeeded")
    assert run.status == "succeeded"
    for target in ("running", "failed", "cancelled", "pending"):
        with pytest.raises(states.IllegalTransition, match=f"illegal run transition succeeded → {target}"):
            states.transition(run, target)
    with pytest.raises(states.IllegalTransition):
        states.transition(SimpleNamespace(status="pending"), "succeeded")  # never ran
    cancelled = SimpleNamespace(status="pending")
    states.transition(cancelled, "cancelled")
    with pytest.raises(states.IllegalTransition):
        states.transition(cancelled, "running")


def test_step_transitions_follow_the_state_machine() -> None:
    step = SimpleNamespace(status="pending", run_id="r")
    with pytest.raises(states.IllegalTransition, match="illegal step transition pending → running"):
        states.transition(step, "running")  # not before it is ready
    for target in ("ready", "running", "ready", "running", "succeeded"):  # a retry goes back to ready
        states.transition(step, target)
    with pytest.raises(states.IllegalTransition):
        states.transition(step, "failed")
    assert {"succeeded", "failed", "cancelled"} == states.RUN_TERMINAL
    assert {"succeeded", "failed", "skipped", "cancelled"} == states.STEP_TERMINAL


# -- declarations --------------------------------------------------------------------------------------


def test_a_cycle_or_an_unknown_step_is_refused() -> None:
    looped = Pipeline("looped")

    @looped.step(after=["c"])
    async def a(ctx) -> None:  # type: ignore[no-untyped-def]
        return None

    @looped.step(after=[a])
    async def b(ctx) -> None:  # type: ignore[no-untyped-def]
        return None

    @looped.step(after=[b])
    async def c(ctx) -> None:  # type: ignore[no-untyped-def]
        return None

    with pytest.raises(PipelineError, match=r"looped: steps form a cycle: a → c → b → a"):
        looped.check()

    dangling = Pipeline("dangling")

    @dangling.step(after=["nowhere"])
    async def x(ctx) -> None:  # type: ignore[no-untyped-def]
        return None

    with pytest.raises(PipelineError, match=r"dangling\.x: comes after unknown step 'nowhere'"):
        dangling.check()
    with pytest.raises(PipelineError, match="at least one step"):
        Pipeline("empty").check()
    with pytest.raises(PipelineError, match="default of 'n' is not a int"):
        Pipeline("bad", params={"n": Param(int, default="3")})
    with pytest.raises(PipelineError, match="step 'x' is declared twice"):
        dangling.step(name="x")(x)


def test_parameters_are_checked_against_their_types() -> None:
    declared = Pipeline(
        "p", params={"n": Param(int, default=1), "f": Param(float), "on": Param(bool, default=False)}
    )
    declared.step(name="only")(lambda ctx: None)
    spec = declared.definition()["params"]
    assert coerce_params(spec, {"f": 2}) == {"n": 1, "f": 2.0, "on": False}
    for given, message in [
        ({"f": 1, "n": "1"}, "parameter 'n' must be int, not str '1'"),
        ({"f": 1, "on": 1}, "parameter 'on' must be bool"),
        ({}, "parameter 'f' (float) is required"),
        ({"f": 1, "x": 1}, "unknown parameter 'x'"),
    ]:
        with pytest.raises(ValueError, match=message.replace("(", r"\(").replace(")", r"\)")):
            coerce_params(spec, given)


def test_builtin_pipelines_load_and_a_module_without_pipelines_is_an_error() -> None:
    pipelines = load_pipelines("tests.workflow_pipelines")
    assert {"rag-eval", "bench-sweep", "noop5", "demo"} <= set(pipelines)
    with pytest.raises(PipelineError, match="defines no Pipeline"):
        load_pipelines("tests.helpers")
    with pytest.raises(PipelineError, match="cannot import pipeline module 'no_such_module'"):
        load_pipelines("no_such_module")


# -- the engine on both databases ----------------------------------------------------------------------


async def _service(database, tmp_path):  # type: ignore[no-untyped-def]
    bus = EventBus(database)
    engine = Engine(database, bus)
    store = ArtifactStore(LocalBackend(tmp_path / "artifacts"))
    service = WorkflowService(
        db=database, bus=bus, engine=engine, store=store, pipelines=load_pipelines("tests.workflow_pipelines")
    )
    await service.register()
    user = await AuthService(database).create_user(username="wf-engine")
    return service, engine, user.id


async def test_competing_workers_claim_each_step_once(database, tmp_path) -> None:  # type: ignore[no-untyped-def]
    service, engine, user_id = await _service(database, tmp_path)
    runs = [
        (await service.create_run(user_id=user_id, body=RunCreate(pipeline="noop5"))).id for _ in range(6)
    ]
    # Two engines on separate connections pools, as two server processes would be; the first flushes every
    # transition (the default), the second does not wait for the flush
    # (HEARTH_WORKFLOWS_SYNCHRONOUS_COMMIT=false).
    other = Engine(type(database)(database.url), EventBus(database), synchronous_commit=False)
    try:
        seen: list[tuple[str, str]] = []

        async def worker(e: Engine, name: str) -> None:
            idle = 0
            while idle < 3:
                await e.promote()
                claimed = await e.claim(worker=name, limit=3)
                idle = 0 if claimed else idle + 1
                for c in claimed:
                    seen.append((c.run_id, c.name))
                    await e.complete(c, Outcome(status="succeeded"), worker=name)
                await asyncio.sleep(0)

        await asyncio.gather(worker(engine, "w1"), worker(other, "w2"), worker(engine, "w3"))
    finally:
        await other.db.close()
    assert sorted(seen) == sorted((r, s) for r in runs for s in "abcde")  # each step exactly once
    for run_id in runs:
        run = await service.get_run(user_id=user_id, run_id=run_id)
        assert run.status == "succeeded" and all(s.attempt == 1 for s in run.steps)


async def test_a_dead_workers_step_is_resumed_or_failed(database, tmp_path) -> None:  # type: ignore[no-untyped-def]
    service, engine, user_id = await _service(database, tmp_path)
    resumable = (await service.create_run(user_id=user_id, body=RunCreate(pipeline="slow"))).id  # retries=1
    doomed = (await service.create_run(user_id=user_id, body=RunCreate(pipeline="noop5"))).id  # retries=0
    await engine.promote()
    claimed = await engine.claim(worker="crashed", limit=10)
    assert {c.run_id for c in claimed} == {resumable, doomed}
    # The worker dies: no heartbeat, no completion. Nothing happens before the heartbeat is stale...
    assert await engine.recover(stale_after=60) == 0
    # ...and once it is, each step is resumed (a retry left) or failed with its run.
    assert await engine.recover(stale_after=60, now=utcnow() + timedelta(seconds=61)) == 2
    run = await service.get_run(user_id=user_id, run_id=resumable)
    assert run.status == "running" and run.steps[0].status == "ready" and "interrupted" in run.steps[0].error
    run = await service.get_run(user_id=user_id, run_id=doomed)
    assert run.status == "failed" and "interrupted: worker crashed stopped" in run.error
    assert [s.status for s in run.steps] == ["failed", "skipped", "skipped", "skipped", "skipped"]
    # The crashed worker's late result is dropped; the resumed attempt's stands.
    late = next(c for c in claimed if c.run_id == resumable)
    assert await engine.complete(late, Outcome(status="succeeded"), worker="crashed") is None
    [again] = await engine.claim(worker="alive", limit=5)
    assert again.attempt == 2
    assert (
        await engine.complete(again, Outcome(status="succeeded", outputs={"slept": 0}), worker="alive")
        == "succeeded"
    )
    run = await service.get_run(user_id=user_id, run_id=resumable)
    assert run.status == "succeeded"
    async with database.sessions() as s:
        running = (await s.scalars(select(StepRow).where(StepRow.status == "running"))).all()
        assert running == []
        assert {r.status for r in (await s.scalars(select(Run))).all()} == {"succeeded", "failed"}


async def test_servers_starting_together_register_pipelines_once(database, tmp_path) -> None:  # type: ignore[no-untyped-def]
    """Three servers starting at once on one database (the scale-out set-up) each register the same
    pipelines: none fails on the unique (name, version), and every one ends with the same stored versions."""
    pools = [type(database)(database.url) for _ in range(3)]
    try:
        services = [
            WorkflowService(
                db=db,
                bus=EventBus(db),
                engine=Engine(db, EventBus(db)),
                store=ArtifactStore(LocalBackend(tmp_path / "artifacts")),
                pipelines=load_pipelines("tests.workflow_pipelines"),
            )
            for db in pools
        ]
        versions = await asyncio.gather(*(s.register() for s in services))
        assert versions[0] == versions[1] == versions[2]
        assert versions[0]["noop5"] == "1"
    finally:
        for db in pools:
            await db.close()
