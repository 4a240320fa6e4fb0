"""Workflows through a real Hearth server: runs of Python-declared pipelines end to end (steps inline and in
child processes, outputs, artifacts, logs, metrics), retries, the bad inputs (wrong parameters, a missing
artifact, a crashing step, steps hanging past their timeout), cancellation, experiments and their
comparison, the workflow event stream, and another user's runs being invisible."""

from __future__ import annotations

import os
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from sqlalchemy import select

from hearth.events import codec
from hearth.events.models import OutboxEvent
from hearth.platform.db import Database
from tests.harness import run_hearth
from tests.helpers import wait_until

EMPTY_CATALOG = {"include_defaults": False, "backends": {}, "aliases": {}}
FAST = {
    "workflows_modules": "tests.workflow_pipelines",
    "workflows_poll_seconds": 0.05,
    "workflows_heartbeat_seconds": 0.2,
}


@pytest.fixture(scope="module")
def hearth(tmp_path_factory) -> Iterator[Any]:  # type: ignore[no-untyped-def]
    with run_hearth(tmp_path_factory.mktemp("workflows"), EMPTY_CATALOG, **FAST) as running:
        yield running


def api(hearth: Any, method: str, path: str, key: str | None = None, **kwargs: Any) -> httpx.Response:
    return httpx.request(
        method, f"{hearth.url}/api/workflows{path}", headers=hearth.headers(key), timeout=60, **kwargs
    )


def start(hearth: Any, pipeline: str, key: str | None = None, **body: Any) -> dict[str, Any]:
    r = api(hearth, "POST", "/runs", key, json={"pipeline": pipeline, **body})
    assert r.status_code == 201, r.text
    return r.json()


def finished(hearth: Any, run_id: str, key: str | None = None, within: float = 30) -> dict[str, Any]:
    def done() -> dict[str, Any] | None:
        run = api(hearth, "GET", f"/runs/{run_id}", key).json()
        return run if run["status"] in ("succeeded", "failed", "cancelled") else None

    return wait_until(done, within, what=f"run {run_id} finished", every=0.05)


def steps(run: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {s["name"]: s for s in run["steps"]}


def test_pipelines_are_listed_with_their_versions_params_and_steps(hearth) -> None:  # type: ignore[no-untyped-def]
    pipelines = {p["name"]: p for p in api(hearth, "GET", "/pipelines").json()}
    assert {"rag-eval", "bench-sweep", "demo", "noop5"} <= set(pipelines)
    demo = pipelines["demo"]
    assert demo["version"] == "2"
    assert demo["params"]["n"] == {"type": "int", "default": 3, "help": ""}
    assert [(s["name"], s["after"], s["inline"]) for s in demo["steps"]] == [
        ("produce", [], False),
        ("consume", ["produce"], True),
    ]
    assert api(hearth, "GET", "/pipelines/nope").status_code == 404


def test_a_run_passes_outputs_and_artifacts_between_steps(hearth) -> None:  # type: ignore[no-untyped-def]
    created = start(hearth, "demo", params={"n": 4, "word": "abc"})
    assert created["status"] in ("pending", "running") and created["params"] == {"n": 4, "word": "abc"}
    run = finished(hearth, created["id"])
    assert run["status"] == "succeeded", run
    by_name = steps(run)
    assert by_name["produce"]["outputs"] == {"count": 4}
    assert by_name["consume"]["outputs"] == {"letters": 4 * len("abc-0")}
    assert all(s["attempt"] == 1 and s["started_at"] and s["finished_at"] for s in run["steps"])
    assert run["metrics"] == {"letters": 20.0}
    [artifact] = run["artifacts"]
    assert (artifact["step"], artifact["name"], artifact["type"]) == ("produce", "words", "dataset")
    assert artifact["uri"].startswith("file://") and artifact["size"] == len("abc-0\n") * 4

    download = api(hearth, "GET", f"/runs/{run['id']}/artifacts/produce.words")
    assert download.status_code == 200 and download.content.decode().split() == [f"abc-{i}" for i in range(4)]
    assert download.headers["x-hearth-sha256"] == artifact["sha256"]
    assert api(hearth, "GET", f"/runs/{run['id']}/artifacts/{artifact['id']}").content == download.content
    assert api(hearth, "GET", f"/runs/{run['id']}/artifacts/produce.nothing").status_code == 404

    logs = api(hearth, "GET", f"/runs/{run['id']}/logs").json()
    lines = [(x["step"], x["line"]) for x in logs["data"]]
    assert ("produce", "produced 4 words") in lines  # print() in the child process
    assert ("consume", "4 words, 20 letters") in lines  # ctx.log inline
    later = api(hearth, "GET", f"/runs/{run['id']}/logs", params={"after": logs["next_after"]}).json()
    assert later["data"] == [] and later["run_status"] == "succeeded"


def test_wrong_parameters_are_refused_and_nothing_is_stored(hearth) -> None:  # type: ignore[no-untyped-def]
    before = len(api(hearth, "GET", "/runs").json()["data"])
    cases = [
        ({"n": "three"}, "parameter 'n' must be int, not str 'three'"),
        ({"n": 2.5}, "parameter 'n' must be int"),
        ({"colour": "red"}, "unknown parameter 'colour'"),
    ]
    for params, message in cases:
        r = api(hearth, "POST", "/runs", json={"pipeline": "demo", "params": params})
        assert r.status_code == 422, r.text
        assert message in r.json()["error"]["message"]
    r = api(hearth, "POST", "/runs", json={"pipeline": "slow", "params": {"seconds": "long"}})
    assert r.status_code == 422 and "'seconds' must be float" in r.json()["error"]["message"]
    r = api(hearth, "POST", "/runs", json={"pipeline": "tally"})
    assert r.status_code == 422 and "parameter 'log' (str) is required" in r.json()["error"]["message"]
    r = api(hearth, "POST", "/runs", json={"pipeline": "no-such"})
    assert r.status_code == 404 and "demo" in r.json()["error"]["message"]
    r = api(hearth, "POST", "/runs", json={"pipeline": "demo", "version": "99"})
    assert r.status_code == 404
    assert len(api(hearth, "GET", "/runs").json()["data"]) == before


def test_missing_artifacts_are_a_clear_error(hearth, tmp_path) -> None:  # type: ignore[no-untyped-def]
    source = tmp_path / "source.txt"
    r = api(hearth, "POST", "/runs", json={"pipeline": "reader", "params": {"source": source.as_uri()}})
    assert r.status_code == 422 and r.json()["error"]["code"] == "missing_artifact"
    assert f"artifact {source.as_uri()} does not exist" in r.json()["error"]["message"]

    source.write_text("twelve bytes")
    ok = finished(hearth, start(hearth, "reader", params={"source": source.as_uri()})["id"])
    assert ok["status"] == "succeeded" and steps(ok)["read"]["outputs"] == {"bytes": 12}

    # It existed when the run was made and is gone when the step needs it: the run fails, naming it.
    gone = finished(hearth, start(hearth, "reader", params={"source": source.as_uri(), "vanish": True})["id"])
    assert gone["status"] == "failed"
    assert (
        gone["error"]
        == f"step 'read' failed: missing input artifact: artifact {source.as_uri()} does not exist"
    )

    # A recorded artifact whose object was deleted: the download says so.
    demo = finished(hearth, start(hearth, "demo")["id"])
    os.remove(demo["artifacts"][0]["uri"].removeprefix("file://"))
    r = api(hearth, "GET", f"/runs/{demo['id']}/artifacts/produce.words")
    assert r.status_code == 404 and r.json()["error"]["code"] == "artifact_missing"


def test_a_failed_attempt_is_retried(hearth) -> None:  # type: ignore[no-untyped-def]
    run = finished(hearth, start(hearth, "flaky")["id"])
    assert run["status"] == "succeeded"
    wobble = steps(run)["wobble"]
    assert wobble["attempt"] == 2 and wobble["outputs"] == {"attempt": 2} and wobble["error"] is None


def test_a_crashing_step_fails_the_run_and_skips_the_rest(hearth) -> None:  # type: ignore[no-untyped-def]
    run = finished(hearth, start(hearth, "crashy")["id"])
    assert run["status"] == "failed"
    assert run["error"].startswith(
        "step 'explode' failed after 2 attempts: ZeroDivisionError: division by zero"
    )
    explode, never = steps(run)["explode"], steps(run)["never"]
    assert explode["status"] == "failed" and explode["attempt"] == 2
    assert never["status"] == "skipped" and never["attempt"] == 0
    logs = [
        x["line"]
        for x in api(hearth, "GET", f"/runs/{run['id']}/logs", params={"step": "explode"}).json()["data"]
    ]
    assert logs.count("about to divide") == 2 and any("ZeroDivisionError" in line for line in logs)


@pytest.mark.parametrize("inline", [False, True])
def test_steps_hanging_past_their_timeout_fail_and_stop(hearth, inline: bool) -> None:  # type: ignore[no-untyped-def]
    run = finished(hearth, start(hearth, "hangs", params={"inline": inline})["id"])
    assert run["status"] == "failed"
    by_name = steps(run)
    failed = [s for s in ("hang_child", "hang_inline") if by_name[s]["status"] == "failed"]
    assert failed, by_name
    assert "timed out after 1 s" in run["error"]
    # The sibling still hanging when the run failed is stopped within a heartbeat: nothing left running.
    run_id = run["id"]

    def stopped() -> dict[str, Any] | None:
        now = api(hearth, "GET", f"/runs/{run_id}").json()
        return now if all(s["status"] in ("failed", "cancelled") for s in now["steps"][1:]) else None

    run = wait_until(stopped, 10, what="both hanging steps stopped")
    # The child process was killed, not left sleeping.
    pid_file = hearth.settings.data_dir / "workflows" / f"{run['id']}.pid"
    if pid_file.exists():
        pid = int(pid_file.read_text())
        wait_until(lambda: not _alive(pid), 10, what="the hung step's process to be gone")


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    try:  # a zombie (exited, not yet reaped) is not running
        with open(f"/proc/{pid}/stat") as f:
            return f.read().split(")")[-1].split()[0] != "Z"
    except FileNotFoundError:
        return False


def test_cancel_stops_a_running_step(hearth, tmp_path) -> None:  # type: ignore[no-untyped-def]
    marker = tmp_path / "marker"
    created = start(hearth, "slow", params={"seconds": 60, "marker": str(marker)})
    wait_until(lambda: marker.exists(), 20, what="the step to start")
    r = api(hearth, "POST", f"/runs/{created['id']}/cancel")
    assert r.status_code == 200 and r.json()["status"] == "cancelled"
    run = wait_until(
        lambda: (
            (x := api(hearth, "GET", f"/runs/{created['id']}").json())["steps"][0]["status"] == "cancelled"
            and x
        ),
        10,
        what="the running step to stop",
    )
    assert run["status"] == "cancelled" and run["error"] == "cancelled by its owner"
    again = api(hearth, "POST", f"/runs/{created['id']}/cancel")
    assert again.status_code == 409 and again.json()["error"]["code"] == "run_finished"


def test_experiments_compare_runs_side_by_side(hearth) -> None:  # type: ignore[no-untyped-def]
    small = finished(hearth, start(hearth, "demo", params={"n": 2}, experiment="sizes")["id"])
    large = finished(hearth, start(hearth, "demo", params={"n": 5}, experiment="sizes")["id"])
    experiments = {e["name"]: e for e in api(hearth, "GET", "/experiments").json()["data"]}
    assert experiments["sizes"]["runs"] == 2
    assert small["experiment_id"] == large["experiment_id"] == experiments["sizes"]["id"]
    listed = api(hearth, "GET", "/runs", params={"experiment_id": experiments["sizes"]["id"]}).json()["data"]
    assert {r["id"] for r in listed} == {small["id"], large["id"]}

    comparison = api(hearth, "GET", f"/experiments/{experiments['sizes']['id']}/compare").json()
    assert [r["id"] for r in comparison["runs"]] == [small["id"], large["id"]]
    assert comparison["params_differing"] == ["n"]
    [letters] = comparison["metrics"]
    assert letters["name"] == "letters" and letters["goal"] == "max"
    assert letters["values"] == {small["id"]: 2 * len("hearth-0"), large["id"]: 5 * len("hearth-0")}
    assert letters["best"] == large["id"]
    by_name = api(hearth, "GET", "/experiments/sizes/compare").json()
    assert by_name == comparison
    direct = api(hearth, "GET", "/compare", params={"runs": [large["id"], small["id"]]}).json()
    assert direct["metrics"][0]["best"] == large["id"]


def test_another_users_runs_are_not_found(hearth) -> None:  # type: ignore[no-untyped-def]
    h = hearth.headers()
    assert (
        httpx.post(f"{hearth.url}/api/admin/users", json={"username": "wf-other"}, headers=h).status_code
        == 201
    )
    other = httpx.post(f"{hearth.url}/api/admin/keys", json={"user": "wf-other"}, headers=h).json()["key"]
    mine = finished(hearth, start(hearth, "demo")["id"])
    assert api(hearth, "GET", f"/runs/{mine['id']}", other).status_code == 404
    assert api(hearth, "POST", f"/runs/{mine['id']}/cancel", other).status_code == 404
    assert api(hearth, "GET", f"/runs/{mine['id']}/logs", other).status_code == 404
    assert api(hearth, "GET", f"/runs/{mine['id']}/artifacts/produce.words", other).status_code == 404
    assert api(hearth, "GET", "/compare", other, params={"runs": [mine["id"]]}).status_code == 404
    assert api(hearth, "GET", "/runs", other).json()["data"] == []
    theirs = finished(hearth, start(hearth, "demo", other)["id"], other)
    assert theirs["status"] == "succeeded"
    # A user may not make the server read its own files, nor run a pipeline kept for admins.
    secret = hearth.settings.data_dir / "admin-key.txt"
    r = api(
        hearth, "POST", "/runs", other, json={"pipeline": "reader", "params": {"source": secret.as_uri()}}
    )
    assert r.status_code == 403 and r.json()["error"]["code"] == "artifact_forbidden"
    mine_artifact = api(hearth, "GET", f"/runs/{theirs['id']}", other).json()["artifacts"][0]["uri"]
    ok = finished(hearth, start(hearth, "reader", other, params={"source": mine_artifact})["id"], other)
    assert ok["status"] == "succeeded"
    sweep = {"target": "http://127.0.0.1:9/v1", "model": "m"}
    r = api(hearth, "POST", "/runs", other, json={"pipeline": "bench-sweep", "params": sweep})
    assert r.status_code == 403 and r.json()["error"]["code"] == "admin_only"


async def test_runs_publish_the_workflow_event_stream(hearth) -> None:  # type: ignore[no-untyped-def]
    run = finished(hearth, start(hearth, "demo")["id"])
    db = Database(hearth.settings.resolved_database_url)
    try:
        async with db.sessions() as s:
            rows = (
                await s.scalars(
                    select(OutboxEvent).where(OutboxEvent.context == "workflows").order_by(OutboxEvent.seq)
                )
            ).all()
    finally:
        await db.close()
    mine = []
    for row in rows:
        payload = codec.loads(row.content_type, row.payload)
        if payload.get("run_id") == run["id"]:
            mine.append((row.type, payload.get("step"), payload.get("status")))
    assert mine == [
        ("PipelineRunCreated", None, None),
        ("StepStarted", "produce", None),
        ("StepCompleted", "produce", "succeeded"),
        ("ArtifactProduced", "produce", None),
        ("StepStarted", "consume", None),
        ("StepCompleted", "consume", "succeeded"),
        ("PipelineRunCompleted", None, "succeeded"),
    ]
