"""What the deployment tests share: the repository's deploy/ files, the tools that lint them (installed by
`make test`), and the check that an environment names only real `HEARTH_*` settings with valid values."""

from __future__ import annotations

import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from hearth.config import Settings
from tests.helpers import tool_missing

ROOT = Path(__file__).resolve().parents[1]
DEPLOY = ROOT / "deploy"


def tool(name: str) -> str:
    """The path of a command on PATH or next to this Python (the venv's bin). Missing: a failure in CI, where
    `make test` installs it, else a skip that says how to get it."""
    found = shutil.which(name) or shutil.which(name, path=str(Path(sys.executable).parent))
    if found:
        return found
    tool_missing(f"{name} is missing: `make test` installs it (Makefile target `{name}` or the dev extra)")


def setting_names() -> dict[str, str]:
    """Every environment variable Settings reads, mapped to its field: HEARTH_<FIELD>, or a field's own
    aliases (HEARTH_HOME and HEARTH_DATA_DIR for data_dir)."""
    names: dict[str, str] = {}
    for field, info in Settings.model_fields.items():
        alias = info.validation_alias
        if alias is None:
            names[f"HEARTH_{field.upper()}"] = field
        else:
            choices = getattr(alias, "choices", [alias])
            names.update({str(choice): field for choice in choices})
    return names


def check_hearth_env(env: dict[str, str | None], where: str, tmp_path: Path) -> Settings:
    """Fail unless every HEARTH_* name in `env` is a setting and the literal values (None: set from a
    Secret, unknown here) load into Settings as they would in the container. Returns those Settings."""
    known = setting_names()
    unknown = sorted(name for name in env if name.startswith("HEARTH_") and name not in known)
    assert not unknown, f"{where}: {unknown} are not Hearth settings (src/hearth/config.py)"
    literal = {known[name]: value for name, value in env.items() if name in known and value is not None}
    # The home path of the container does not exist here; a value is checked, not used.
    literal.pop("data_dir", None)
    try:
        return Settings(data_dir=tmp_path, **literal)
    except ValidationError as exc:
        raise AssertionError(f"{where}: a HEARTH_* value is invalid: {exc}") from None


# ---- rendered Kubernetes manifests (deploy/k8s) ----------------------------------------------------------

K8S = DEPLOY / "k8s"
OVERLAYS = ("embedded", "scale-out", "gpu-inference")
# Every folder with a kustomization.yaml is rendered and validated, the base included; components render
# only inside an overlay (components/gpu-inference in overlays/gpu-inference).
KUSTOMIZATIONS = sorted(
    p.parent.relative_to(K8S).as_posix()
    for p in K8S.rglob("kustomization.yaml")
    if yaml.safe_load(p.read_text()).get("kind") != "Component"
)


def render(folder: Path) -> list[dict[str, Any]]:
    """`kubectl kustomize folder`, as objects."""
    result = subprocess.run(
        [tool("kubectl"), "kustomize", str(folder)], capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, f"kubectl kustomize {folder}: {result.stderr}"
    return [doc for doc in yaml.safe_load_all(result.stdout) if doc]


_rendered: dict[str, list[dict[str, Any]]] = {}


def rendered(name: str) -> list[dict[str, Any]]:
    """A folder under deploy/k8s, rendered once per test session."""
    if name not in _rendered:
        _rendered[name] = render(K8S / name)
    return _rendered[name]


def overlay(name: str) -> list[dict[str, Any]]:
    return rendered(f"overlays/{name}")


def find(objects: list[dict[str, Any]], kind: str, name: str | None = None) -> list[dict[str, Any]]:
    return [o for o in objects if o["kind"] == kind and (name is None or o["metadata"]["name"] == name)]


def one(objects: list[dict[str, Any]], kind: str, name: str) -> dict[str, Any]:
    found = find(objects, kind, name)
    assert len(found) == 1, f"expected one {kind}/{name}, found {len(found)}"
    return found[0]


def pod_specs(objects: list[dict[str, Any]]) -> Iterator[tuple[dict[str, Any], dict[str, Any]]]:
    for o in objects:
        if o["kind"] in ("Deployment", "StatefulSet", "DaemonSet", "Job"):
            yield o, o["spec"]["template"]


def container(deployment: dict[str, Any], name: str) -> dict[str, Any]:
    (found,) = [c for c in deployment["spec"]["template"]["spec"]["containers"] if c["name"] == name]
    return found


def env_of(c: dict[str, Any]) -> dict[str, Any]:
    return {e["name"]: e.get("value", e.get("valueFrom")) for e in c.get("env", [])}


def selects(selector: dict[str, str], labels: dict[str, str]) -> bool:
    return bool(selector) and all(labels.get(k) == v for k, v in selector.items())


def spec_labels(deployment: dict[str, Any]) -> dict[str, str]:
    return deployment["spec"]["template"]["metadata"]["labels"]


def hearth_config(objects: list[dict[str, Any]]) -> dict[str, Any]:
    """The ConfigMap that holds hearth.yaml (its name carries a hash of its content)."""
    (found,) = [c for c in find(objects, "ConfigMap") if c["metadata"]["name"].startswith("hearth-config")]
    return found
