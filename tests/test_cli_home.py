"""One home for data and config, and a CLI that finds its server: a real `hearth serve` process writes its URL
into HEARTH_HOME; `hearth` commands run from another folder read it, honour HEARTH_URL and HEARTH_API_KEY, and
explain an unreachable server in one line."""

from __future__ import annotations

import json
import multiprocessing
from pathlib import Path

import pytest
import yaml

from hearth.home import write_server_file
from tests.fake_openai import FakeOpenAI
from tests.harness import free_port, remote_config
from tests.serve_helpers import clean_env, hearth, hearth_serve


@pytest.fixture(scope="module")
def upstream():  # type: ignore[no-untyped-def]
    fake = FakeOpenAI().start()
    fake.behaviour.stream_chunks = 3
    yield fake
    fake.stop()


def test_commands_run_anywhere_find_the_server_its_key_and_its_data(tmp_path: Path, upstream) -> None:  # type: ignore[no-untyped-def]
    home = tmp_path / "home"
    home.mkdir()
    # The model catalogue is read from the home, not from the folder the server was started in.
    (home / "hearth.yaml").write_text(yaml.safe_dump(remote_config((upstream.url, {}))))
    elsewhere = tmp_path / "somewhere" / "else"
    elsewhere.mkdir(parents=True)
    env = clean_env(home)
    with hearth_serve(home) as url:
        assert (home / "server.json").exists() and (home / "admin-key.txt").exists()
        admin_key = (home / "admin-key.txt").read_text().strip()

        # No --url, no HEARTH_URL, no key given: the server's own record in the home answers both.
        models = hearth("models", env=env, cwd=elsewhere)
        assert models.returncode == 0, models.stderr
        assert "chat" in models.stdout and "up0/m0" in models.stdout
        reply = hearth("chat", "hello", env=env, cwd=elsewhere)
        assert reply.returncode == 0 and reply.stdout.strip() == "tok0 tok1 tok2", reply.stderr

        shown = hearth("env", env=env, cwd=elsewhere)
        assert (
            f"export HEARTH_URL={url}" in shown.stdout
            and f"export HEARTH_API_KEY={admin_key}" in shown.stdout
        )

        # The database commands use the same home: the admin key is listed, nothing is created here.
        keys = hearth("keys", "list", env=env, cwd=elsewhere)
        assert keys.returncode == 0 and admin_key[:11] in keys.stdout, keys.stderr
        assert list(elsewhere.iterdir()) == []

        # HEARTH_API_KEY wins over the saved key (a revoked or wrong one is refused by the server).
        wrong = hearth("models", env={**env, "HEARTH_API_KEY": "hk-wrong"}, cwd=elsewhere)
        assert wrong.returncode == 1 and "error 401" in wrong.stderr

        # HEARTH_URL wins over the server's record: a server that is not there is one line with the fix.
        dead = f"http://127.0.0.1:{free_port()}"
        for command in (
            ["models"],
            ["chat", "hi"],
            ["rag", "collections"],
            ["usage"],
            ["conversations", "list"],
        ):
            result = hearth(*command, env={**env, "HEARTH_URL": dead}, cwd=elsewhere)
            assert result.returncode == 1, (command, result.stderr)
            assert result.stderr.strip().splitlines() == [
                f"error: cannot reach Hearth at {dead} (from HEARTH_URL): connection refused. Start it with "
                "`hearth serve`, or point the CLI at a running server with --url or HEARTH_URL."
            ], command
    # Stopped: its record is gone, and a client says where it looked.
    assert not (home / "server.json").exists()
    gone = hearth("models", env=clean_env(home, HEARTH_PORT=str(free_port())), cwd=elsewhere)
    assert gone.returncode == 1 and "(from HEARTH_HOST/HEARTH_PORT)" in gone.stderr
    assert "Traceback" not in gone.stderr


def test_listing_keys_of_a_home_without_a_database_creates_nothing(tmp_path: Path) -> None:
    home = tmp_path / "empty-home"
    result = hearth("keys", "list", env=clean_env(home), cwd=tmp_path)
    assert result.returncode == 1
    assert f"no Hearth database in {home}" in result.stderr and "hearth serve" in result.stderr
    assert not home.exists() and list(tmp_path.iterdir()) == []


def test_plan_asks_the_chat_model_only_when_it_is_a_real_one(tmp_path: Path, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    from hearth.cli.plan import _chat_is_remote, _chat_only
    from hearth.config import Settings

    home = tmp_path / "home"
    home.mkdir()
    monkeypatch.setenv("HEARTH_HOME", str(home))
    for name in ("HEARTH_DATA_DIR", "HEARTH_CONFIG_FILE"):
        monkeypatch.delenv(name, raising=False)
    # Out of the box `chat` is the embedded 135M demo model: the parser reads the use case instead.
    assert not _chat_is_remote()
    # With a real model behind `chat` (hearth.yaml in the home), it is asked, and only its backend starts.
    (home / "hearth.yaml").write_text(yaml.safe_dump(remote_config(("http://127.0.0.1:9/v1", {}))))
    assert _chat_is_remote()
    only = _chat_only(Settings().models)
    assert list(only.aliases) == ["chat"] and list(only.backends) == ["up0"]


def _write_many(home: str) -> None:
    for _ in range(300):
        write_server_file(Path(home), url="http://127.0.0.1:1")


def test_servers_sharing_a_home_write_its_server_file_together(tmp_path) -> None:  # type: ignore[no-untyped-def]
    """Replicas on one host share a home and start together: none fails writing the server file (with one
    shared temporary name, one's rename took the other's file away), and the file left is whole."""
    context = multiprocessing.get_context("spawn")
    with context.Pool(3) as pool:
        pool.map(_write_many, [str(tmp_path)] * 3)  # raises here if any write failed
    assert json.loads((tmp_path / "server.json").read_text())["url"] == "http://127.0.0.1:1"
    assert not list(tmp_path.glob("*.tmp"))
