"""`hearth run …`: start pipeline runs and follow their steps live, list, inspect, cancel, read logs,
download artifacts, compare runs, print a run's Argo Workflow; `hearth run step` is Argo's entrypoint."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import Any

import httpx
import orjson
import typer
import yaml
from rich.live import Live
from rich.table import Table

from hearth.cli.client_commands import KEY_OPTION, URL_OPTION, console, endpoint, fail_with
from hearth.cli.http import unreachable
from hearth.cli.main import app
from hearth.cli.users import print_table

run_app = typer.Typer(
    help="Workflow pipelines: start runs (with a live view of their steps), list, inspect, cancel, logs, "
    "artifacts, experiments and comparisons; Argo Workflows.",
    no_args_is_help=True,
)
app.add_typer(run_app, name="run")

FINAL = {"succeeded", "failed", "cancelled"}
COLOURS = {
    "pending": "dim",
    "ready": "cyan",
    "running": "yellow",
    "succeeded": "green",
    "failed": "red",
    "cancelled": "magenta",
    "skipped": "dim",
}


class _Api:
    def __init__(self, url: str | None, api_key: str | None) -> None:
        base, headers = endpoint(url, api_key)
        self.http = httpx.Client(base_url=f"{base}/api/workflows", headers=headers, timeout=60)

    def __call__(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        try:
            response = self.http.request(method, path, **kwargs)
        except httpx.TransportError as exc:
            raise unreachable(exc) from None
        if response.status_code >= 400:
            fail_with(response)
        return response


def _params(pairs: list[str], declared: dict[str, Any]) -> dict[str, Any]:
    from hearth.workflows.pipeline import parse_cli_value

    out: dict[str, Any] = {}
    for pair in pairs:
        name, sep, value = pair.partition("=")
        if not sep:
            raise typer.BadParameter(f"{pair!r}: write NAME=VALUE", param_hint="--param")
        spec = declared.get(name)
        out[name] = parse_cli_value(spec["type"], value) if spec else value
    return out


def _status(text: str) -> str:
    return f"[{COLOURS.get(text, 'white')}]{text}[/]"


def _seconds(step: dict[str, Any]) -> str:
    from datetime import UTC, datetime

    if not step.get("started_at"):
        return ""
    start = datetime.fromisoformat(step["started_at"])
    end = datetime.fromisoformat(step["finished_at"]) if step.get("finished_at") else datetime.now(UTC)
    return f"{(end - start).total_seconds():.1f}s"


def steps_table(run: dict[str, Any]) -> Table:
    """A run's steps: state, attempt, time, outputs or error."""
    table = Table(title=f"{run['pipeline']} v{run['version']} · run {run['id']} · {_status(run['status'])}")
    for column in ("step", "state", "attempt", "time", "outputs / error"):
        table.add_column(column)
    for step in run["steps"]:
        detail = step["error"] or (orjson.dumps(step["outputs"]).decode() if step["outputs"] else "")
        attempts = f"{step['attempt']}/{step['retries'] + 1}" if step["attempt"] else ""
        table.add_row(step["name"], _status(step["status"]), attempts, _seconds(step), detail[:100])
    return table


def _follow(api: _Api, run_id: str, every: float = 0.5) -> dict[str, Any]:
    """Redraw the steps until the run ends; returns the last state."""
    run = api("GET", f"/runs/{run_id}").json()
    with Live(steps_table(run), console=console, refresh_per_second=4) as live:
        while run["status"] not in FINAL:
            time.sleep(every)
            run = api("GET", f"/runs/{run_id}").json()
            live.update(steps_table(run))
    return run


def _summary(run: dict[str, Any]) -> None:
    if run["metrics"]:
        console.print("metrics: " + ", ".join(f"{k} {v:.4g}" for k, v in sorted(run["metrics"].items())))
    for artifact in run["artifacts"]:
        console.print(
            f"artifact {artifact['step']}.{artifact['name']} ({artifact['type']}, {artifact['size']} B): "
            f"{artifact['uri']}"
        )
    if run["error"]:
        typer.secho(f"error: {run['error']}", fg="red", err=True)


@run_app.command("pipelines")
def pipelines(url: str | None = URL_OPTION, api_key: str | None = KEY_OPTION) -> None:
    """The pipelines the server runs, with their parameters."""
    table = Table("pipeline", "version", "steps", "parameters", "description")
    for p in _Api(url, api_key)("GET", "/pipelines").json():
        params = ", ".join(
            f"{n}: {s['type']}" + (f" = {s['default']!r}" if "default" in s else "")
            for n, s in p["params"].items()
        )
        table.add_row(
            p["name"], p["version"], " → ".join(s["name"] for s in p["steps"]), params, p["description"]
        )
    print_table(table)


@run_app.command("start")
def start(
    pipeline: str = typer.Argument(..., help="Pipeline name (see `hearth run pipelines`)."),
    param: list[str] = typer.Option([], "--param", "-p", help="A parameter, NAME=VALUE (repeatable)."),
    experiment: str | None = typer.Option(
        None, "--experiment", "-e", help="Group the run in this experiment."
    ),
    version: str | None = typer.Option(None, help="Pipeline version (default: the server's current one)."),
    argo: bool = typer.Option(
        False, "--argo", help="Run it on Argo Workflows instead of the local executor."
    ),
    detach: bool = typer.Option(False, "--detach", "-d", help="Print the run id and return at once."),
    url: str | None = URL_OPTION,
    api_key: str | None = KEY_OPTION,
) -> None:
    """Start a run and show its steps live until it ends (exit code 1 if it failed or was cancelled)."""
    api = _Api(url, api_key)
    declared = api("GET", f"/pipelines/{pipeline}").json()["params"]
    body: dict[str, Any] = {
        "pipeline": pipeline,
        "params": _params(param, declared),
        "executor": "argo" if argo else "local",
    }
    if experiment:
        body["experiment"] = experiment
    if version:
        body["version"] = version
    run = api("POST", "/runs", json=body).json()
    if detach:
        typer.echo(run["id"])
        return
    run = _follow(api, run["id"])
    _summary(run)
    raise typer.Exit(0 if run["status"] == "succeeded" else 1)


@run_app.command("watch")
def watch(run_id: str, url: str | None = URL_OPTION, api_key: str | None = KEY_OPTION) -> None:
    """Follow a run's steps live until it ends."""
    run = _follow(_Api(url, api_key), run_id)
    _summary(run)
    raise typer.Exit(0 if run["status"] == "succeeded" else 1)


@run_app.command("list")
def list_runs(
    status: str | None = typer.Option(None, help="pending, running, succeeded, failed or cancelled."),
    pipeline: str | None = typer.Option(None),
    limit: int = typer.Option(20, min=1, max=500),
    url: str | None = URL_OPTION,
    api_key: str | None = KEY_OPTION,
) -> None:
    """Your runs, newest first."""
    params = {
        k: v for k, v in {"status": status, "pipeline": pipeline, "limit": limit}.items() if v is not None
    }
    table = Table("run", "pipeline", "state", "created", "error")
    for r in _Api(url, api_key)("GET", "/runs", params=params).json()["data"]:
        table.add_row(
            r["id"],
            f"{r['pipeline']} v{r['version']}",
            _status(r["status"]),
            r["created_at"][:19],
            (r["error"] or "")[:60],
        )
    print_table(table)


@run_app.command("show")
def show(run_id: str, url: str | None = URL_OPTION, api_key: str | None = KEY_OPTION) -> None:
    """A run's steps, metrics and artifacts."""
    run = _Api(url, api_key)("GET", f"/runs/{run_id}").json()
    print_table(steps_table(run))
    _summary(run)


@run_app.command("cancel")
def cancel(run_id: str, url: str | None = URL_OPTION, api_key: str | None = KEY_OPTION) -> None:
    """Cancel a pending or running run."""
    run = _Api(url, api_key)("POST", f"/runs/{run_id}/cancel").json()
    console.print(f"run {run_id}: {_status(run['status'])}")


@run_app.command("logs")
def logs(
    run_id: str,
    step: str | None = typer.Option(None, help="Only this step's lines."),
    follow: bool = typer.Option(False, "--follow", "-f", help="Keep printing until the run ends."),
    url: str | None = URL_OPTION,
    api_key: str | None = KEY_OPTION,
) -> None:
    """A run's log lines, each after its step and attempt."""
    api = _Api(url, api_key)
    after = 0
    while True:
        page = api(
            "GET", f"/runs/{run_id}/logs", params={"after": after, **({"step": step} if step else {})}
        ).json()
        for line in page["data"]:
            typer.echo(f"{line['step']}[{line['attempt']}] {line['line']}")
        after = page["next_after"]
        if not follow or (page["run_status"] in FINAL and not page["data"]):
            return
        if not page["data"]:
            time.sleep(0.5)


@run_app.command("download")
def download(
    run_id: str,
    artifact: str = typer.Argument(..., help="STEP.NAME or the artifact's id."),
    output: Path | None = typer.Option(
        None, "--output", "-o", help="File to write (default: the artifact's name)."
    ),
    url: str | None = URL_OPTION,
    api_key: str | None = KEY_OPTION,
) -> None:
    """Save an artifact of a run."""
    response = _Api(url, api_key)("GET", f"/runs/{run_id}/artifacts/{artifact}")
    target = output or Path(artifact.partition(".")[2] or artifact)
    target.write_bytes(response.content)
    console.print(f"wrote {target} ({len(response.content)} B)")


@run_app.command("experiments")
def experiments(url: str | None = URL_OPTION, api_key: str | None = KEY_OPTION) -> None:
    """Your experiments and how many runs each has."""
    table = Table("experiment", "id", "runs", "created")
    for e in _Api(url, api_key)("GET", "/experiments").json()["data"]:
        table.add_row(e["name"], e["id"], str(e["runs"]), e["created_at"][:19])
    print_table(table)


@run_app.command("compare")
def compare(
    runs: list[str] = typer.Argument(None, help="Run ids to compare."),
    experiment: str | None = typer.Option(None, "--experiment", "-e", help="Compare an experiment's runs."),
    as_json: bool = typer.Option(False, "--json", help="Print the comparison as JSON."),
    url: str | None = URL_OPTION,
    api_key: str | None = KEY_OPTION,
) -> None:
    """Runs side by side: parameters that differ and each metric, the winner marked ★."""
    api = _Api(url, api_key)
    if experiment:
        result = api("GET", f"/experiments/{experiment}/compare").json()
    elif runs:
        result = api("GET", "/compare", params={"runs": runs}).json()
    else:
        raise typer.BadParameter("name runs or --experiment", param_hint="RUNS")
    if as_json:
        typer.echo(orjson.dumps(result, option=orjson.OPT_INDENT_2).decode())
        return
    table = Table("", *(r["id"][:12] for r in result["runs"]), title="comparison")
    for name in result["params_differing"]:
        table.add_row(f"param {name}", *(repr(r["params"].get(name)) for r in result["runs"]))
    for m in result["metrics"]:
        cells = []
        for r in result["runs"]:
            value = m["values"].get(r["id"])
            cell = "—" if value is None else f"{value:.4f}"
            cells.append(f"[bold green]{cell} ★[/]" if m["best"] == r["id"] else cell)
        table.add_row(f"{m['name']} ({m['goal']})", *cells)
    print_table(table)


@run_app.command("argo")
def argo(run_id: str, url: str | None = URL_OPTION, api_key: str | None = KEY_OPTION) -> None:
    """Print the Argo Workflow a run compiles to (YAML, validated against Argo's CRD schema)."""
    workflow = _Api(url, api_key)("GET", f"/runs/{run_id}/argo").json()["workflow"]
    typer.echo(yaml.safe_dump(workflow, sort_keys=False))


@run_app.command("step")
def step(
    run_id: str = typer.Argument(..., help="The run."),
    name: str = typer.Argument(..., help="The step to run."),
) -> None:
    """Run one step of a run here, against the configured database (what Argo's containers call)."""
    from hearth.config import Settings
    from hearth.workflows.steprun import run_step

    code, message = asyncio.run(run_step(Settings(), run_id, name))
    typer.secho(message, fg="green" if code == 0 else "red", err=code != 0)
    raise typer.Exit(code)
