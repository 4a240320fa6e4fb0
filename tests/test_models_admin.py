"""Admins add, change and remove backends and aliases at run time (/api/admin/models and `hearth models
add|set|remove`): validated, audited, served at once and still there after a restart."""

from __future__ import annotations

import asyncio

import httpx
import pytest
from typer.testing import CliRunner

from hearth.auth.service import AuthService
from hearth.cli.main import app as cli
from hearth.platform.db import Database
from tests.harness import remote_config, run_hearth
from tests.helpers import wait_until


def _user_key(hearth) -> str:
    async def make() -> str:
        db = Database(hearth.settings.resolved_database_url)
        try:
            auth = AuthService(db)
            await auth.create_user(username="someone")
            _, key = await auth.create_key(username="someone")
            return key
        finally:
            await db.close()

    return asyncio.run(make())


def _chat(hearth, model: str) -> httpx.Response:
    body = {"model": model, "messages": [{"role": "user", "content": "hi"}]}
    return httpx.post(f"{hearth.v1}/chat/completions", json=body, headers=hearth.headers())


def test_add_change_remove_persist_and_audit(tmp_path, upstreams):
    a, b = upstreams

    with run_hearth(tmp_path, remote_config((a.url, {}))) as hearth:
        admin_url = f"{hearth.url}/api/admin/models"
        h = hearth.headers()
        r = httpx.post(
            f"{admin_url}/backends", json={"name": "second", "type": "openai", "base_url": b.url}, headers=h
        )
        assert r.status_code == 201, r.text
        assert r.json()["base_url"] == b.url and r.json()["changed_by_admin"] is True
        r = httpx.post(
            f"{admin_url}/aliases",
            json={"name": "smart", "kind": "chat", "deployments": [{"backend": "second", "model": "big"}]},
            headers=h,
        )
        assert r.status_code == 201, r.text
        answer = _chat(hearth, "smart")
        assert answer.status_code == 200
        assert answer.headers["x-hearth-deployment"] == "second/big"  # the new backend served
        assert b.stats.bodies[-1]["model"] == "big"

        # Change: the existing chat alias gets the new backend as its primary, the old one as fallback.
        r = httpx.patch(
            f"{admin_url}/aliases/chat",
            json={
                "deployments": [
                    {"backend": "second", "model": "big"},
                    {"backend": "up0", "model": "m0", "priority": 1},
                ]
            },
            headers=h,
        )
        assert r.status_code == 200, r.text
        assert _chat(hearth, "chat").headers["x-hearth-deployment"] == "second/big"

        # A backend in use cannot be removed; an alias can, then its backend.
        r = httpx.delete(f"{admin_url}/backends/second", headers=h)
        assert r.status_code == 409 and "smart" in r.json()["error"]["message"]
        assert httpx.delete(f"{admin_url}/aliases/smart", headers=h).status_code == 204
        assert _chat(hearth, "smart").status_code == 404

        listing = httpx.get(admin_url, headers=h).json()
        assert {x["name"] for x in listing["aliases"]} == {"chat"}
        assert next(x for x in listing["backends"] if x["name"] == "second")["used_by"] == ["chat"]

        # Every change is in the audit log, with the admin who made it.
        def audited() -> list[dict]:
            entries = httpx.get(f"{hearth.url}/api/admin/audit", headers=h).json()["data"]
            return [e for e in entries if e["action"].startswith(("backend.", "alias."))]

        entries = wait_until(lambda: len(audited()) == 4 and audited(), 20, what="four audit entries")
        assert [(e["action"], e["target"]) for e in reversed(entries)] == [
            ("backend.added", "second"),
            ("alias.added", "smart"),
            ("alias.changed", "chat"),
            ("alias.removed", "smart"),
        ]
        assert all(e["actor"] == "admin" for e in entries)

    # A restart on the same data: the changes are still served, over the same hearth.yaml.
    with run_hearth(tmp_path, remote_config((a.url, {}))) as hearth:
        assert _chat(hearth, "chat").headers["x-hearth-deployment"] == "second/big"
        assert _chat(hearth, "smart").status_code == 404
        card = httpx.get(f"{hearth.v1}/models/chat", headers=hearth.headers()).json()
        assert card["deployments"] == ["second/big", "up0/m0"]


@pytest.mark.parametrize(
    ("path", "body", "status", "message"),
    [
        (
            "backends",
            {"name": "x", "type": "opneai", "base_url": "http://127.0.0.1:1/v1"},
            422,
            "backends.x.type",
        ),
        ("backends", {"name": "x", "type": "openai", "base_url": "not a url"}, 422, "is not an http(s) URL"),
        ("backends", {"name": "x", "type": "openai"}, 422, "needs base_url"),
        (
            "backends",
            {"name": "x", "type": "openai", "base_url": "http://h/v1", "colour": 1},
            422,
            "unknown key",
        ),
        ("backends", {"name": "up0", "type": "openai", "base_url": "http://h/v1"}, 409, "already exists"),
        (
            "aliases",
            {"name": "y", "kind": "chat", "deployments": [{"backend": "nope"}]},
            422,
            "unknown backend 'nope'",
        ),
        (
            "aliases",
            {"name": "y", "kind": "chatty", "deployments": [{"backend": "up0"}]},
            422,
            "aliases.y.kind",
        ),
        ("aliases", {"kind": "chat", "deployments": [{"backend": "up0"}]}, 422, "name"),
        (
            "backends",
            {"name": "g", "type": "llama_cpp", "model_path": "/nonexistent.gguf"},
            422,
            "does not exist",
        ),
    ],
)
def test_invalid_changes_are_refused_and_change_nothing(tmp_path, upstreams, path, body, status, message):
    a, _ = upstreams
    with run_hearth(tmp_path, remote_config((a.url, {}))) as hearth:
        url = f"{hearth.url}/api/admin/models"
        before = httpx.get(url, headers=hearth.headers()).json()
        r = httpx.post(f"{url}/{path}", json=body, headers=hearth.headers())
        assert r.status_code == status, r.text
        assert message in r.json()["error"]["message"]
        assert httpx.get(url, headers=hearth.headers()).json()["backends"] == before["backends"]
        assert _chat(hearth, "chat").status_code == 200


def test_only_admins_change_models(tmp_path, upstreams):
    a, _ = upstreams
    with run_hearth(tmp_path, remote_config((a.url, {}))) as hearth:
        user = {"Authorization": f"Bearer {_user_key(hearth)}"}
        url = f"{hearth.url}/api/admin/models"
        assert httpx.get(url, headers=user).status_code == 403
        assert httpx.delete(f"{url}/aliases/chat", headers=user).status_code == 403
        assert httpx.get(f"{hearth.v1}/models", headers=user).status_code == 200  # reading is for everyone
        assert httpx.patch(f"{url}/aliases/nope", json={}, headers=hearth.headers()).status_code == 404


def test_cli_add_set_remove(tmp_path, upstreams):
    a, b = upstreams
    with run_hearth(tmp_path, remote_config((a.url, {}))) as hearth:
        args = ["--url", hearth.url, "--api-key", hearth.admin_key]
        run = CliRunner().invoke
        result = run(
            cli, ["models", "add", "backend", "ollama", "--type", "openai", "--base-url", b.url, *args]
        )
        assert result.exit_code == 0, result.output
        result = run(
            cli, ["models", "set", "alias", "chat", "-d", "ollama/llama3.2:1b", "-d", "up0/m0", *args]
        )
        assert result.exit_code == 0, result.output
        assert _chat(hearth, "chat").headers["x-hearth-deployment"] == "ollama/llama3.2:1b"
        assert b.stats.bodies[-1]["model"] == "llama3.2:1b"
        listing = run(cli, ["models", *args], env={"COLUMNS": "250"})
        assert listing.exit_code == 0 and "ollama/llama3.2:1b" in listing.output
        result = run(cli, ["models", "remove", "backend", "ollama", *args])
        assert result.exit_code == 1 and "still used by chat" in result.output
        result = run(
            cli, ["models", "add", "backend", "bad", "--type", "openai", "--base-url", "localhost", *args]
        )
        assert result.exit_code == 1 and "422" in result.output and "http(s) URL" in result.output
        result = run(cli, ["models", "set", "alias", "chat", "-d", "up0/m0", *args])
        assert result.exit_code == 0
        result = run(cli, ["models", "remove", "backend", "ollama", *args])
        assert result.exit_code == 0, result.output
        assert _chat(hearth, "chat").headers["x-hearth-deployment"] == "up0/m0"


def test_another_server_on_the_same_database_follows_the_changes(tmp_path, upstreams):
    a, b = upstreams
    config = remote_config((a.url, {}))
    with (
        run_hearth(tmp_path, config, models_sync_seconds=0.2) as first,
        run_hearth(tmp_path, config, models_sync_seconds=0.2) as second,
    ):
        url = f"{first.url}/api/admin/models"
        body = {"name": "second", "type": "openai", "base_url": b.url}
        assert httpx.post(f"{url}/backends", json=body, headers=first.headers()).status_code == 201
        alias = {"name": "smart", "kind": "chat", "deployments": [{"backend": "second", "model": "big"}]}
        assert httpx.post(f"{url}/aliases", json=alias, headers=first.headers()).status_code == 201

        # A worker or replica that shares the database serves the change within a sync period.
        wait_until(lambda: _chat(second, "smart").status_code == 200, 20, what="the other server serves it")
        assert _chat(second, "smart").headers["x-hearth-deployment"] == "second/big"
        assert httpx.delete(f"{url}/aliases/smart", headers=first.headers()).status_code == 204
        wait_until(lambda: _chat(second, "smart").status_code == 404, 20, what="the other server drops it")
