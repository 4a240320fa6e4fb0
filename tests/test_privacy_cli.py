"""`hearth me export -o file.zip` and `hearth me erase` against a real server on loopback."""

from __future__ import annotations

import zipfile
from pathlib import Path

import httpx
import orjson
from typer.testing import CliRunner

from hearth.cli.main import app as cli
from tests.harness import run_hearth


def test_me_export_and_erase(tmp_path: Path) -> None:
    with run_hearth(tmp_path, {"include_defaults": False}) as hearth:
        admin = hearth.headers()
        assert (
            httpx.post(f"{hearth.url}/api/admin/users", json={"username": "rosa"}, headers=admin).status_code
            == 201
        )
        key = httpx.post(f"{hearth.url}/api/admin/keys", json={"user": "rosa"}, headers=admin).json()["key"]
        rosa = {"Authorization": f"Bearer {key}"}
        r = httpx.put(f"{hearth.url}/api/me/preferences", json={"voice": "rosa-voice"}, headers=rosa)
        assert r.status_code == 200

        def me(*args: str, input: str | None = None):  # type: ignore[no-untyped-def]
            return CliRunner().invoke(cli, ["me", *args, "--url", hearth.url, "--api-key", key], input=input)

        out = tmp_path / "rosa.zip"
        result = me("export", "-o", str(out))
        assert result.exit_code == 0, result.output
        assert not out.with_name("rosa.zip.part").exists()
        with zipfile.ZipFile(out) as archive:
            assert orjson.loads(archive.read("chat.json"))["preferences"][0]["voice"] == "rosa-voice"
            assert orjson.loads(archive.read("auth.json"))["user"][0]["username"] == "rosa"

        result = me("erase", "--confirm", "not-rosa")
        assert result.exit_code == 1 and "confirm" in result.output
        assert httpx.get(f"{hearth.url}/api/me", headers=rosa).status_code == 200  # nothing happened
        result = me("erase", input="rosa\n")  # asked interactively
        assert result.exit_code == 0, result.output
        assert "erased from:" in result.output and "chat" in result.output
        assert httpx.get(f"{hearth.url}/api/me", headers=rosa).status_code == 401
        result = me("export", "-o", str(tmp_path / "again.zip"))
        assert result.exit_code == 1 and "401" in result.output
        assert not (tmp_path / "again.zip").exists()
        users = httpx.get(f"{hearth.url}/api/admin/users", headers=admin).json()["data"]
        assert "rosa" not in {u["username"] for u in users}
