"""The README runs as written: its `bash` and `python` blocks, in order, in a fresh folder, against a real
`hearth serve` on a free port with an empty HEARTH_HOME (what `make run` gives a new user). Blocks fenced
`bash manual` are skipped (long-running servers and benchmarks, typing, data outside the repository). The
quickstart's YAML blocks must be valid model catalogues."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest
import yaml

from hearth.config import load_models_config
from tests.serve_helpers import clean_env, hearth_serve

ROOT = Path(__file__).resolve().parents[1]
FENCE = re.compile(r"^```([^\n]*)\n(.*?)^```", re.MULTILINE | re.DOTALL)


@dataclass(frozen=True)
class Block:
    language: str
    manual: bool
    code: str
    line: int


def blocks(path: Path) -> list[Block]:
    text = path.read_text()
    found = []
    for match in FENCE.finditer(text):
        info = match.group(1).split()
        found.append(
            Block(
                language=info[0] if info else "",
                manual="manual" in info[1:],
                code=match.group(2),
                line=text.count("\n", 0, match.start()) + 1,
            )
        )
    return found


def test_readme_commands_name_the_venv_and_every_block_is_run_or_marked() -> None:
    found = blocks(ROOT / "README.md")
    shell = [b for b in found if b.language in ("bash", "sh")]
    assert shell and any(not b.manual for b in shell)
    for block in shell:
        for line in block.code.splitlines():
            # A new user's shell has no `hearth` on its PATH until the venv is activated.
            assert not re.match(r"\s*hearth\b", line), f"README.md:{block.line}: bare `hearth`: {line}"
    # Only shell and Python blocks can be run; anything else is a typo in the fence.
    assert {b.language for b in found} <= {"bash", "python"}, {b.language for b in found}


def test_quickstart_catalogues_are_valid(tmp_path: Path) -> None:
    found = [b for b in blocks(ROOT / "docs" / "quickstart.md") if b.language == "yaml"]
    assert len(found) >= 3
    for number, block in enumerate(found):
        path = tmp_path / f"hearth-{number}.yaml"
        path.write_text(block.code)
        models = load_models_config(path)
        assert models.aliases["chat"].deployments[0].backend in yaml.safe_load(block.code)["backends"]
    # The shell example writes a catalogue too.
    [shell] = [b for b in blocks(ROOT / "docs" / "quickstart.md") if "cat >" in b.code]
    heredoc = shell.code.split("<<'EOF'\n", 1)[1].rsplit("EOF", 1)[0]
    (tmp_path / "from-shell.yaml").write_text(heredoc)
    assert "ollama" in load_models_config(tmp_path / "from-shell.yaml").backends


def _script(found: list[Block]) -> str:
    """One bash script of the runnable blocks (one shell, so `export`/`eval` carry on as for a user)."""
    parts = ["set -euo pipefail"]
    for block in found:
        if block.manual:
            continue
        parts.append(f"echo '>>> README.md:{block.line}' >&2")
        if block.language == "python":
            parts.append(f".venv/bin/python - <<'README_PYTHON'\n{block.code}README_PYTHON")
        else:
            parts.append(block.code)
    return "\n".join(parts) + "\n"


@pytest.fixture
def fresh_clone(tmp_path: Path) -> Path:
    """A folder laid out like a clone after `make install`: `.venv/bin/hearth` and `.venv/bin/python` (this
    interpreter, running the code under test) and the repository's `docs/`."""
    clone = tmp_path / "clone"
    bin_dir = clone / ".venv" / "bin"
    bin_dir.mkdir(parents=True)
    for name, command in (("hearth", f'"{sys.executable}" -m hearth'), ("python", f'"{sys.executable}"')):
        shim = bin_dir / name
        shim.write_text(f'#!/bin/sh\nexec {command} "$@"\n')
        shim.chmod(0o755)
    (clone / "docs").symlink_to(ROOT / "docs")
    return clone


def test_readme_runs_as_written(tmp_path: Path, fresh_clone: Path) -> None:
    home = tmp_path / "home"
    home.mkdir()
    script = fresh_clone / "readme.sh"
    script.write_text(_script(blocks(ROOT / "README.md")))
    with hearth_serve(home, within=300):
        # The user's shell: HEARTH_HOME is where `make run` keeps things (here a fresh folder), nothing else.
        env = clean_env(home)
        env["PATH"] = os.environ.get("PATH", "/usr/bin:/bin")
        result = subprocess.run(
            ["bash", str(script)],
            cwd=fresh_clone,
            env=env,
            capture_output=True,
            text=True,
            timeout=1500,
            stdin=subprocess.DEVNULL,
        )
    where = [line for line in result.stderr.splitlines() if line.startswith(">>> README.md:")]
    block = where[-1] if where else "?"
    assert result.returncode == 0, f"failed at {block}:\n{result.stdout[-3000:]}\n{result.stderr[-3000:]}"
    assert "Traceback" not in result.stderr
    out = result.stdout
    assert "export HEARTH_URL=http://127.0.0.1:" in out  # hearth env
    assert "embeddings of 384 dimensions" in out  # the OpenAI SDK snippet
    assert "created key" not in out and "revoked key" in out  # the key itself alone on stdout
    assert "docs" in out and "quickstart.md" in out  # rag collections / documents
    assert "wrote hello.wav" in out and "wrote answer.wav" in out
    assert "saved 1 benchmark rows for the planner" in out
    # Outputs land in the home, not in the folder the commands ran from.
    assert (home / "plan" / "plan.json").exists() and list((home / "bench-results").glob("bench-*.png"))
    assert not (fresh_clone / "plan").exists() and not (fresh_clone / "data").exists()
