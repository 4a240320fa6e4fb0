"""Declaring pipelines in Python: typed parameters, steps with their order, outputs, artifacts, retries and
timeouts. A pipeline is checked when declared (unknown steps, cycles, bad types) and stored with a version.

    pipeline = Pipeline("report", version="1", params={"rows": Param(int, default=10)})

    @pipeline.step(outputs={"count": int})
    async def load(ctx: StepContext) -> dict:
        return {"count": ctx.params["rows"]}

    @pipeline.step(after=[load], artifacts={"table": "dataset"}, retries=2, timeout=60)
    def write(ctx: StepContext) -> None:                 # a plain `def` runs in a child process
        ctx.artifact_path("table").write_text("x\\n" * ctx.upstream["load"]["count"])

`async def` steps run on the server's event loop (they may use `ctx.ports`: other contexts' ports) and are
cancelled at their timeout; `def` steps run in a child process, killed at their timeout or on cancel.
"""

from __future__ import annotations

import hashlib
import inspect
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson
from pydantic import TypeAdapter, ValidationError

PARAM_TYPES: dict[str, type] = {
    "str": str,
    "int": int,
    "float": float,
    "bool": bool,
    "list": list,
    "dict": dict,
}
ARTIFACT_TYPES = ("model", "dataset", "metrics", "logs", "report", "file")
# A parameter of type `artifact`: the URI of an existing artifact (file:// or s3://), checked at creation.
ARTIFACT_PARAM = "artifact"


class PipelineError(ValueError):
    """A pipeline declared wrongly (a cycle, an unknown step, a bad type): raised at declaration."""


@dataclass(frozen=True)
class Param:
    """A typed run parameter; no default means required."""

    type: type | str
    default: Any = ...
    help: str = ""

    @property
    def type_name(self) -> str:
        if isinstance(self.type, str):
            return self.type
        for name, t in PARAM_TYPES.items():
            if t is self.type:
                return name
        raise PipelineError(f"parameter type {self.type!r} is not one of {[*PARAM_TYPES, ARTIFACT_PARAM]}")


def _adapter(type_name: str) -> TypeAdapter[Any]:
    # Strict, so "3" is not an int and 1 is not a bool; a float accepts an int.
    if type_name == "float":
        return TypeAdapter(float)
    if type_name == ARTIFACT_PARAM:
        return TypeAdapter(str)
    return TypeAdapter(PARAM_TYPES[type_name], config={"strict": True})


def coerce_params(declared: dict[str, dict[str, Any]], given: dict[str, Any]) -> dict[str, Any]:
    """The run's parameters: `given` checked against the declaration, defaults filled in. Raises ValueError
    naming the first wrong parameter."""
    unknown = sorted(set(given) - set(declared))
    if unknown:
        raise ValueError(
            f"unknown parameter {unknown[0]!r}; this pipeline takes {sorted(declared) or 'none'}"
        )
    out: dict[str, Any] = {}
    for name, spec in declared.items():
        if name not in given:
            if "default" not in spec:
                raise ValueError(f"parameter {name!r} ({spec['type']}) is required")
            out[name] = spec["default"]
            continue
        try:
            out[name] = _adapter(spec["type"]).validate_python(given[name])
        except ValidationError:
            raise ValueError(
                f"parameter {name!r} must be {spec['type']}, not {type(given[name]).__name__} {given[name]!r}"
            ) from None
    return out


def parse_cli_value(type_name: str, text: str) -> Any:
    """A parameter given as text on the command line (`-p rows=10`), read as its declared type."""
    if type_name in ("str", ARTIFACT_PARAM):
        return text
    if type_name == "bool":
        if text.lower() in ("true", "1", "yes"):
            return True
        if text.lower() in ("false", "0", "no"):
            return False
        return text
    try:
        return orjson.loads(text)
    except orjson.JSONDecodeError:
        return text


StepFunction = Callable[["StepContext"], Any]


@dataclass(frozen=True)
class Step:
    name: str
    fn: StepFunction
    after: tuple[str, ...] = ()
    outputs: dict[str, str] = field(default_factory=dict)  # name → type name
    artifacts: dict[str, str] = field(default_factory=dict)  # name → artifact type
    retries: int = 0
    timeout: float | None = None
    description: str = ""

    @property
    def inline(self) -> bool:
        """Runs on the event loop (async def) rather than in a child process (def)."""
        return inspect.iscoroutinefunction(self.fn)

    @property
    def target(self) -> str:
        """Where the function lives, `module:qualname` (a child process imports it from there)."""
        return f"{self.fn.__module__}:{self.fn.__qualname__}"

    def definition(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "after": list(self.after),
            "outputs": self.outputs,
            "artifacts": self.artifacts,
            "retries": self.retries,
            "timeout": self.timeout,
            "inline": self.inline,
            "target": self.target,
            "description": self.description,
        }


class Pipeline:
    """A named, versioned graph of steps; `definition()` is what is stored and what runs are built from."""

    def __init__(
        self,
        name: str,
        *,
        version: str = "1",
        description: str = "",
        params: dict[str, Param] | None = None,
        metrics: dict[str, str] | None = None,
        admin_only: bool = False,
    ) -> None:
        if not name or not all(c.isalnum() or c in "-_." for c in name):
            raise PipelineError(f"pipeline name {name!r}: use letters, digits, '-', '_' or '.'")
        self.name = name
        self.version = version
        self.description = description
        self.params = dict(params or {})
        # metric name (or suffix after a '.', e.g. "dense.ndcg10" → "ndcg10") → "max" or "min": which wins
        self.metrics = dict(metrics or {})
        # Only admins may start it (e.g. it writes data every user shares, or reaches arbitrary URLs).
        self.admin_only = admin_only
        self.steps: dict[str, Step] = {}
        for pname, p in self.params.items():
            if p.type_name not in (*PARAM_TYPES, ARTIFACT_PARAM):
                raise PipelineError(f"{name}: parameter {pname!r} has unknown type {p.type_name!r}")
            if p.default is not ... and p.type_name != ARTIFACT_PARAM:
                try:
                    _adapter(p.type_name).validate_python(p.default)
                except ValidationError:
                    raise PipelineError(
                        f"{name}: default of {pname!r} is not a {p.type_name}: {p.default!r}"
                    ) from None

    def step(
        self,
        *,
        name: str | None = None,
        after: list[StepFunction | str] | None = None,
        outputs: dict[str, type | str] | None = None,
        artifacts: dict[str, str] | None = None,
        retries: int = 0,
        timeout: float | None = None,
    ) -> Callable[[StepFunction], StepFunction]:
        """Declare the decorated function as a step coming after `after` (functions or step names)."""

        def register(fn: StepFunction) -> StepFunction:
            step_name = name or fn.__name__
            if step_name in self.steps:
                raise PipelineError(f"{self.name}: step {step_name!r} is declared twice")
            deps = tuple(a if isinstance(a, str) else getattr(a, "__name__", str(a)) for a in after or ())
            out_types = {k: Param(v).type_name for k, v in (outputs or {}).items()}
            for kind in (artifacts or {}).values():
                if kind not in ARTIFACT_TYPES:
                    raise PipelineError(
                        f"{self.name}.{step_name}: artifact type {kind!r} not in {ARTIFACT_TYPES}"
                    )
            if retries < 0 or (timeout is not None and timeout <= 0):
                raise PipelineError(f"{self.name}.{step_name}: retries must be ≥ 0 and timeout > 0")
            self.steps[step_name] = Step(
                name=step_name,
                fn=fn,
                after=deps,
                outputs=out_types,
                artifacts=dict(artifacts or {}),
                retries=retries,
                timeout=timeout,
                description=(inspect.getdoc(fn) or "").split("\n")[0],
            )
            return fn

        return register

    def check(self) -> None:
        """Raise `PipelineError` for an empty pipeline, an unknown step after `after`, or a cycle."""
        if not self.steps:
            raise PipelineError(f"{self.name}: a pipeline needs at least one step")
        for step in self.steps.values():
            for dep in step.after:
                if dep not in self.steps:
                    raise PipelineError(f"{self.name}.{step.name}: comes after unknown step {dep!r}")
        self.order()

    def order(self) -> list[str]:
        """Steps in an order where each comes after its dependencies; a cycle is a `PipelineError`."""
        done: list[str] = []
        state: dict[str, int] = {}  # 1: on the current path, 2: finished

        def visit(name: str, path: list[str]) -> None:
            if state.get(name) == 2:
                return
            if state.get(name) == 1:
                loop = [*path[path.index(name) :], name]
                raise PipelineError(f"{self.name}: steps form a cycle: {' → '.join(loop)}")
            state[name] = 1
            for dep in self.steps[name].after:
                visit(dep, [*path, name])
            state[name] = 2
            done.append(name)

        for name in self.steps:
            visit(name, [])
        return done

    def definition(self) -> dict[str, Any]:
        self.check()
        params: dict[str, dict[str, Any]] = {}
        for pname, p in self.params.items():
            spec: dict[str, Any] = {"type": p.type_name, "help": p.help}
            if p.default is not ...:
                spec["default"] = p.default
            params[pname] = spec
        return {
            "name": self.name,
            "version": self.version,
            "description": self.description,
            "params": params,
            "metrics": self.metrics,
            "admin_only": self.admin_only,
            "steps": [self.steps[n].definition() for n in self.order()],
        }

    def digest(self) -> str:
        return hashlib.sha256(orjson.dumps(self.definition(), option=orjson.OPT_SORT_KEYS)).hexdigest()[:16]


class StepContext:
    """What a step receives: its run's parameters, the outputs of the steps it comes after, paths for the
    artifacts it writes and reads, a log, metrics; inline (async) steps also get the platform's `ports`."""

    def __init__(
        self,
        *,
        run_id: str,
        step: str,
        attempt: int,
        params: dict[str, Any],
        upstream: dict[str, dict[str, Any]],
        workdir: Path,
        inputs: dict[str, Path],
        owner_id: str,
        ports: Any = None,
        emit: Callable[[tuple[Any, ...]], None] | None = None,
    ) -> None:
        self.run_id = run_id
        self.step = step
        self.attempt = attempt
        self.params = params
        self.upstream = upstream
        self.workdir = workdir
        self.inputs = inputs  # "step.artifact" → local path of an upstream artifact
        self.owner_id = owner_id
        self.ports = ports
        self._emit = emit or (lambda message: None)
        self.logs: list[str] = []
        self.metrics: dict[str, float] = {}

    def log(self, line: str) -> None:
        """A line of this step's log (shown by `hearth run logs` and the API)."""
        self.logs.append(str(line))
        self._emit(("log", str(line)))

    def metric(self, name: str, value: float) -> None:
        """A metric of the run (compared across an experiment's runs)."""
        self.metrics[name] = float(value)
        self._emit(("metric", name, float(value)))

    def artifact_path(self, name: str) -> Path:
        """Where to write the declared artifact `name`; it is stored (file:// or s3://) when the step ends."""
        path = self.workdir / "out" / name
        path.parent.mkdir(parents=True, exist_ok=True)
        return path

    def input_path(self, ref: str) -> Path:
        """The local copy of an upstream step's artifact, `"step.name"`."""
        if ref not in self.inputs:
            raise KeyError(f"no artifact {ref!r} from the steps this one comes after ({sorted(self.inputs)})")
        return self.inputs[ref]
