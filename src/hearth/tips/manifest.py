"""Agent manifests: a YAML file beside a Python function declares what the agent is, what it may read and
when it runs. Validated once at start-up; a bad manifest stops the server with the file and field named."""

from __future__ import annotations

import importlib.util
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import fastjsonschema
import jsonschema
import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from hearth.tips.consents import CONSENTS, SIGNAL_KINDS

BUILTIN_DIR = Path(__file__).parent / "agents"


class ManifestError(ValueError):
    """A manifest that cannot be used: the message names the file and the field."""


class Schedule(BaseModel):
    model_config = ConfigDict(extra="forbid")
    every_minutes: float = Field(15, gt=0, le=7 * 24 * 60)


class Manifest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    id: str = Field(pattern=r"^[a-z][a-z0-9-]{1,62}$")
    version: str = Field(min_length=1, max_length=32)
    description: str = Field(min_length=1, max_length=500)
    function: str = Field("run", pattern=r"^[A-Za-z_][A-Za-z0-9_]*$")  # in the .py beside the manifest
    consents: list[str] = []
    inputs: list[str] = []
    schedule: Schedule = Schedule()
    ttl_minutes: float = Field(60, gt=0, le=30 * 24 * 60)
    priority: float = Field(50, ge=0, le=100)
    silenced_by: list[str] = []  # context names in which the agent stays quiet
    enabled: bool = True
    output_schema: dict[str, Any]

    @field_validator("consents")
    @classmethod
    def _known_consents(cls, value: list[str]) -> list[str]:
        for key in value:
            if key not in CONSENTS:
                raise ValueError(f"unknown consent {key!r}; known: {', '.join(CONSENTS)}")
        return value

    @field_validator("inputs")
    @classmethod
    def _known_inputs(cls, value: list[str]) -> list[str]:
        for kind in value:
            if kind not in SIGNAL_KINDS:
                raise ValueError(f"unknown signal kind {kind!r}; known: {', '.join(SIGNAL_KINDS)}")
        return value

    @field_validator("output_schema")
    @classmethod
    def _valid_schema(cls, value: dict[str, Any]) -> dict[str, Any]:
        try:
            jsonschema.Draft7Validator.check_schema(value)
        except jsonschema.SchemaError as exc:
            where = "/".join(str(p) for p in exc.path)
            raise ValueError(
                f"not a valid JSON Schema{f' at {where}' if where else ''}: {exc.message}"
            ) from None
        return value

    @model_validator(mode="after")
    def _inputs_need_consents(self) -> Manifest:
        # An agent reading tasks must say it needs tasks.read, so revoking it silences the agent.
        for kind in self.inputs:
            needed = SIGNAL_KINDS[kind]
            if needed and needed not in self.consents:
                raise ValueError(f"inputs: {kind!r} needs consent {needed!r}; add it to consents")
        return self


@dataclass(frozen=True)
class Agent:
    """A loaded agent: its manifest, its function and the validator of what the function returns."""

    manifest: Manifest
    run: Callable[[Any], Any]
    validate: Callable[[Any], Any]  # raises fastjsonschema.JsonSchemaValueException for a bad output
    source: Path

    @property
    def id(self) -> str:
        return self.manifest.id


def load_manifest(path: Path) -> Agent:
    """The agent declared by `path` (YAML) and the function in the .py of the same name beside it."""
    try:
        raw = yaml.safe_load(path.read_text())
    except yaml.YAMLError as exc:
        raise ManifestError(f"{path}: not valid YAML ({exc})") from None
    if not isinstance(raw, dict):
        raise ManifestError(f"{path}: expected a mapping of manifest fields")
    try:
        manifest = Manifest.model_validate(raw)
    except ValidationError as exc:
        first = exc.errors()[0]
        field = ".".join(str(p) for p in first["loc"]) or "(top level)"
        message = first["msg"].removeprefix("Value error, ")
        raise ManifestError(f"{path}: {field}: {message}") from None
    module_path = path.with_suffix(".py")
    if not module_path.exists():
        raise ManifestError(f"{path}: function: no {module_path.name} beside the manifest")
    spec = importlib.util.spec_from_file_location(f"hearth_tips_agent_{path.stem}", module_path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    fn = getattr(module, manifest.function, None)
    if not callable(fn):
        raise ManifestError(f"{path}: function: {module_path.name} has no function {manifest.function!r}")
    try:
        validate = fastjsonschema.compile(manifest.output_schema)
    except fastjsonschema.JsonSchemaDefinitionException as exc:
        raise ManifestError(f"{path}: output_schema: cannot be compiled ({exc})") from None
    return Agent(manifest, fn, validate, path)


class Registry:
    """Every agent from the built-in folder and the configured extra folders, by id."""

    def __init__(self, agents: list[Agent]) -> None:
        self.agents: dict[str, Agent] = {}
        for agent in agents:
            if agent.id in self.agents:
                other = self.agents[agent.id].source
                raise ManifestError(f"{agent.source}: id: {agent.id!r} is already declared by {other}")
            self.agents[agent.id] = agent

    @classmethod
    def load(cls, extra_dirs: list[Path] | tuple[Path, ...] = (), *, builtin: bool = True) -> Registry:
        folders = ([BUILTIN_DIR] if builtin else []) + list(extra_dirs)
        agents = []
        for folder in folders:
            if not folder.is_dir():
                raise ManifestError(f"{folder}: agent folder does not exist (HEARTH_TIPS_AGENT_DIRS)")
            agents.extend(load_manifest(path) for path in sorted(folder.glob("*.yaml")))
        return cls(agents)

    def __iter__(self):  # type: ignore[no-untyped-def]
        return iter(self.agents.values())

    def get(self, agent_id: str) -> Agent | None:
        return self.agents.get(agent_id)

    def requiring(self, consent: str) -> list[str]:
        """The ids of agents that need `consent` (their outputs go when it is revoked)."""
        return [a.id for a in self if consent in a.manifest.consents]
