"""What the deployment tests share: the repository's deploy/ files, the tools that lint them (installed by
`make test`), and the check that an environment names only real `HEARTH_*` settings with valid values."""

from __future__ import annotations

import os
import shutil
import sys
from pathlib import Path

import pytest
from pydantic import ValidationError

from hearth.config import Settings

ROOT = Path(__file__).resolve().parents[1]
DEPLOY = ROOT / "deploy"


def tool(name: str) -> str:
    """The path of a command on PATH or next to this Python (the venv's bin). Missing: a failure in CI, where
    `make test` installs it, else a skip that says how to get it."""
    found = shutil.which(name) or shutil.which(name, path=str(Path(sys.executable).parent))
    if found:
        return found
    message = f"{name} is missing: `make test` installs it (Makefile target `{name}` or the dev extra)"
    if os.environ.get("CI") == "true":
        pytest.fail(message)
    pytest.skip(message)


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
