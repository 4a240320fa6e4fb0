"""Argo Workflows and the `hearth run` command.

Argo: a run compiles to a Workflow that validates against Argo's CRD schema (shipped in the package); with
`executor: argo` it is created through the official kubernetes client, tested against a loopback server
that records what the client sends and answers as the API server would (no Kubernetes API server can run
here); the containers' command, `hearth run step RUN STEP`, is then run as Argo would run it, in order,
against the same database. The CLI: a run started and followed from the command line."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from hearth.workflows.argo import compile_workflow, validate
from tests.harness import run_hearth
from tests.serve_helpers import clean_env, hearth
from tests.test_workflows_api import EMPTY_CATALOG, FAST, api, finished, start, steps

ROOT = Path(__file__).resolve().parents[1]


class _FakeKubernetes(BaseHTTPRequestHandler):
    """Creates echo the object back (201); PATCHes are recorded; `fail` makes creates a 500."""

    requests: list[tuple[str, str, dict | None]] = []
    fail = False

    def do_POST(self) -> None:
        body = json.loads(self.rfile.read(int(self.headers["content-length"])))
        self.requests.append(("POST", self.path, body))
        if self.fail:
            self._send(500, {"kind": "Status", "status": "Failure", "message": "etcd is down", "code": 500})
        else:
            self._send(201, body)

    def do_PATCH(self) -> None:
        body = json.loads(self.rfile.read(int(self.headers["content-length"])))
        self.requests.append(("PATCH", self.path, body))
        self._send(200, body)

    def _send(self, status: int, body: dict) -> None:
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, *args: Any) -> None:
        return None


@pytest.fixture(scope="module")
def kube() -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _FakeKubernetes)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{server.server_port}"
    finally:
        server.shutdown()


@pytest.fixture(scope="module")
def hearth_argo(tmp_path_factory, kube) -> Iterator[Any]:  # type: ignore[no-untyped-def]
    settings = {
        **FAST,
        "argo_kube_api_url": kube,
        "argo_namespace": "ml",
        "argo_image": "registry.local/hearth:1",
    }
    with run_hearth(tmp_path_factory.mktemp("argo"), EMPTY_CATALOG, **settings) as running:
        yield running


def test_runs_compile_to_workflows_valid_against_argos_crd(hearth_argo) -> None:  # type: ignore[no-untyped-def]
    pipelines = {p["name"]: p for p in api(hearth_argo, "GET", "/pipelines").json()}
    for pipeline in pipelines.values():  # every pipeline the server knows compiles to a valid Workflow
        validate(compile_workflow(run_id="0" * 32, definition=pipeline, image="i", namespace="n", secret="s"))
    run = finished(hearth_argo, start(hearth_argo, "crashy")["id"])
    workflow = api(hearth_argo, "GET", f"/runs/{run['id']}/argo").json()["workflow"]
    assert workflow["apiVersion"] == "argoproj.io/v1alpha1" and workflow["kind"] == "Workflow"
    assert workflow["metadata"]["namespace"] == "ml"
    dag, explode, never = workflow["spec"]["templates"]
    assert dag["dag"]["tasks"] == [
        {"name": "explode", "template": "step-explode"},
        {"name": "never", "template": "step-never", "dependencies": ["explode"]},
    ]
    assert explode["container"]["image"] == "registry.local/hearth:1"
    assert explode["container"]["command"] == ["hearth", "run", "step", run["id"], "explode"]
    assert explode["container"]["envFrom"] == [{"secretRef": {"name": "hearth-workflows"}}]
    assert explode["retryStrategy"] == {"limit": 1, "retryPolicy": "OnFailure"}
    assert "retryStrategy" not in never

    broken = json.loads(json.dumps(workflow))
    broken["spec"]["templates"][1]["retryStrategy"]["limit"] = {"times": 1}
    with pytest.raises(ValueError, match=r"spec/templates/1/retryStrategy/limit"):
        validate(broken)
    broken = json.loads(json.dumps(workflow))
    broken["spec"]["templates"][1]["container"]["envFrom"] = "hearth-workflows"
    with pytest.raises(ValueError, match="is not of type 'array'"):
        validate(broken)


def test_argo_runs_are_submitted_and_their_steps_run_by_hearth_run_step(hearth_argo, tmp_path) -> None:  # type: ignore[no-untyped-def]
    _FakeKubernetes.requests = []
    created = start(hearth_argo, "demo", params={"n": 2}, executor="argo")
    [(method, path, body)] = _FakeKubernetes.requests
    assert (method, path) == ("POST", "/apis/argoproj.io/v1alpha1/namespaces/ml/workflows")
    assert body["metadata"]["name"] == f"hearth-run-{created['id'][:16]}"
    validate(body)
    # The local executor leaves Argo's runs alone.
    assert api(hearth_argo, "GET", f"/runs/{created['id']}").json()["status"] == "pending"

    # What Argo's containers do, in the DAG's order, against the same database (the server's SQLite here).
    env = clean_env(
        hearth_argo.settings.data_dir,
        PYTHONPATH=str(ROOT),
        HEARTH_CONFIG_FILE=str(hearth_argo.settings.config_file),
        HEARTH_WORKFLOWS_MODULES="tests.workflow_pipelines",
    )
    for step in ("produce", "consume"):
        result = hearth("run", "step", created["id"], step, env=env, cwd=tmp_path)
        assert result.returncode == 0, result.stderr + result.stdout
        assert f"step '{step}' succeeded" in result.stdout + result.stderr
    run = finished(hearth_argo, created["id"])
    assert run["status"] == "succeeded" and run["executor"] == "argo"
    assert steps(run)["consume"]["outputs"] == {"letters": 2 * len("hearth-0")}
    again = hearth("run", "step", created["id"], "produce", env=env, cwd=tmp_path)
    assert again.returncode == 0 and "already succeeded" in again.stdout + again.stderr

    # A cancelled Argo run asks Argo to stop its Workflow.
    other = start(hearth_argo, "slow", executor="argo")
    assert api(hearth_argo, "POST", f"/runs/{other['id']}/cancel").json()["status"] == "cancelled"
    assert _FakeKubernetes.requests[-1] == (
        "PATCH",
        f"/apis/argoproj.io/v1alpha1/namespaces/ml/workflows/hearth-run-{other['id'][:16]}",
        {"spec": {"shutdown": "Stop"}},
    )
    refused = hearth("run", "step", other["id"], "nap", env=env, cwd=tmp_path)
    assert refused.returncode == 1 and "is cancelled, not ready to run" in refused.stderr


def test_a_failed_submission_fails_the_run(hearth_argo) -> None:  # type: ignore[no-untyped-def]
    _FakeKubernetes.fail = True
    try:
        r = api(hearth_argo, "POST", "/runs", json={"pipeline": "demo", "executor": "argo"})
    finally:
        _FakeKubernetes.fail = False
    assert r.status_code == 502 and r.json()["error"]["code"] == "argo_submit_failed"
    assert "Argo submission failed" in r.json()["error"]["message"]
    [failed] = api(hearth_argo, "GET", "/runs", params={"status": "failed", "pipeline": "demo"}).json()[
        "data"
    ]
    assert failed["error"].startswith("Argo submission failed")


def test_argo_needs_a_cluster(tmp_path) -> None:  # type: ignore[no-untyped-def]
    with run_hearth(tmp_path, EMPTY_CATALOG, **FAST) as plain:
        r = api(plain, "POST", "/runs", json={"pipeline": "demo", "executor": "argo"})
        assert r.status_code == 400 and r.json()["error"]["code"] == "argo_unavailable"

        # The CLI: start a run, follow it live, compare two runs of an experiment.
        env = clean_env(
            plain.settings.data_dir,
            PYTHONPATH=str(ROOT),
            HEARTH_URL=plain.url,
            HEARTH_API_KEY=plain.admin_key,
        )
        ok = hearth("run", "start", "demo", "-p", "n=2", "-p", "word=xy", "-e", "cli", env=env, cwd=tmp_path)
        assert ok.returncode == 0, ok.stderr + ok.stdout
        assert "succeeded" in ok.stdout and "artifact produce.words (dataset, 10 B)" in ok.stdout
        assert "letters 8" in ok.stdout
        more = hearth(
            "run", "start", "demo", "-p", "n=4", "-p", "word=xy", "-e", "cli", env=env, cwd=tmp_path
        )
        assert more.returncode == 0
        compared = hearth("run", "compare", "-e", "cli", "--json", env=env, cwd=tmp_path)
        result = json.loads(compared.stdout)
        assert result["params_differing"] == ["n"] and result["metrics"][0]["values"]
        bad = hearth("run", "start", "crashy", env=env, cwd=tmp_path)
        assert (
            bad.returncode == 1 and "step 'explode' failed after 2 attempts: ZeroDivisionError" in bad.stderr
        )
        wrong = hearth("run", "start", "demo", "-p", "n=many", env=env, cwd=tmp_path)
        assert wrong.returncode == 1 and "parameter 'n' must be int" in wrong.stderr
        run_id = result["runs"][0]["id"]
        logs = hearth("run", "logs", run_id, env=env, cwd=tmp_path)
        assert "produce[1] produced 2 words" in logs.stdout
        out = tmp_path / "words.txt"
        got = hearth("run", "download", run_id, "produce.words", "-o", str(out), env=env, cwd=tmp_path)
        assert got.returncode == 0 and out.read_text().split() == ["xy-0", "xy-1"]
