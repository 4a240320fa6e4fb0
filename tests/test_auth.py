"""Users, API keys, Bearer auth, rate limits, the admin routes and the `hearth users/keys` commands."""

from __future__ import annotations

import asyncio
import hashlib
import stat
from pathlib import Path
from types import SimpleNamespace

import httpx
import pytest
import typer
from fastapi import FastAPI
from sqlalchemy import select, text
from typer.testing import CliRunner

from hearth.auth.api import router
from hearth.auth.models import ApiKey
from hearth.auth.principal import Principal
from hearth.auth.ratelimit import RateLimiter
from hearth.auth.service import AuthService
from hearth.cli.keys import keys_app
from hearth.cli.users import users_app
from hearth.platform.db import Database
from hearth.platform.errors import HearthError, install_error_handlers


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


@pytest.fixture
async def auth(database: Database):  # type: ignore[no-untyped-def]
    service = AuthService(database, cache_seconds=60.0)
    yield service
    await service.drain()


# ---- service ----


async def test_keys_are_stored_as_hashes(auth: AuthService, database: Database) -> None:
    user = await auth.create_user(username="alice")
    row, token = await auth.create_key(user_id=user.id, name="laptop")
    assert token.startswith("hk-") and len(token) == 43
    assert row.key_hash == hashlib.sha256(token.encode()).hexdigest()
    assert row.prefix == token[:11]
    async with database.sessions() as session:
        stored = (await session.execute(text("SELECT * FROM api_keys"))).mappings().all()
    assert len(stored) == 1
    assert token not in {str(v) for v in stored[0].values()}
    [info] = await auth.list_keys(username="alice")
    assert info.id == row.id and info.username == "alice" and info.name == "laptop"
    assert not hasattr(info, "key_hash")


async def test_priority_defaults_follow_the_user(auth: AuthService) -> None:
    await auth.create_user(username="vip", premium=True)
    await auth.create_user(username="plain")
    vip_key, _ = await auth.create_key(username="vip")
    plain_key, _ = await auth.create_key(username="plain")
    vip_standard, _ = await auth.create_key(username="vip", priority="standard", rpm_limit=5, tpm_limit=100)
    assert (vip_key.priority, plain_key.priority, vip_standard.priority) == (
        "premium",
        "standard",
        "standard",
    )
    assert (vip_standard.rpm_limit, vip_standard.tpm_limit) == (5, 100)
    with pytest.raises(HearthError) as bad:
        await auth.create_key(username="plain", priority="gold")
    assert bad.value.status == 422
    with pytest.raises(HearthError) as bad:
        await auth.create_key(username="plain", rpm_limit=0)
    assert bad.value.status == 422


async def test_authenticate(auth: AuthService) -> None:
    user = await auth.create_user(username="bob", role="admin")
    row, token = await auth.create_key(username="bob", rpm_limit=7)
    principal = await auth.authenticate(token)
    assert principal == Principal(user.id, "bob", "admin", row.id, "standard", 7, None)
    assert principal.is_admin
    assert await auth.authenticate("hk-" + "x" * 40) is None
    assert await auth.authenticate("not-a-key") is None
    assert await auth.authenticate("") is None


async def key_of(auth: AuthService, token: str) -> str | None:
    """The id of the key `token` authenticates as, or None when it is refused."""
    principal = await auth.authenticate(token)
    return principal.key_id if principal else None


async def test_revoke_invalidates_the_cache_at_once(auth: AuthService) -> None:
    await auth.create_user(username="carol")
    row, token = await auth.create_key(username="carol")
    assert await key_of(auth, token) == row.id
    revoked = await auth.revoke_key(key_id=row.id)
    assert revoked.revoked_at is not None
    assert await auth.authenticate(token) is None
    again = await auth.revoke_key(key_id=row.id)  # idempotent: keeps the first revocation time
    assert again.revoked_at == revoked.revoked_at
    with pytest.raises(HearthError) as missing:
        await auth.revoke_key(key_id="nope")
    assert missing.value.status == 404


async def test_disabled_user_is_refused(auth: AuthService) -> None:
    user = await auth.create_user(username="dave")
    row, token = await auth.create_key(username="dave")
    assert await key_of(auth, token) == row.id
    await auth.set_user_disabled(user_id=user.id)
    assert await auth.authenticate(token) is None
    await auth.set_user_disabled(user_id=user.id, disabled=False)
    assert await key_of(auth, token) == row.id


async def test_revoke_elsewhere_is_seen_after_cache_expiry(database: Database) -> None:
    clock = FakeClock()
    server = AuthService(database, cache_seconds=2.0, clock=clock)
    cli = AuthService(database)  # another process: its revoke cannot reach the server's cache
    await cli.create_user(username="erin")
    row, token = await cli.create_key(username="erin")
    assert await key_of(server, token) == row.id
    await cli.revoke_key(key_id=row.id)
    assert await key_of(server, token) == row.id  # still cached
    clock.advance(2.1)
    assert await server.authenticate(token) is None
    await server.drain()


async def test_unknown_keys_are_cached_briefly(auth: AuthService) -> None:
    loads = 0
    real_load = auth._load

    async def counting_load(digest: str, generation: int):  # type: ignore[no-untyped-def]
        nonlocal loads
        loads += 1
        return await real_load(digest, generation)

    auth._load = counting_load  # type: ignore[method-assign]
    bad = "hk-" + "y" * 40
    for _ in range(5):
        assert await auth.authenticate(bad) is None
    assert loads == 1
    # A cold cache hit by many requests at once costs one query, not one per request.
    await auth.create_user(username="flood")
    row, token = await auth.create_key(username="flood")
    results = await asyncio.gather(*(key_of(auth, token) for _ in range(20)))
    assert results == [row.id] * 20
    assert loads == 2


async def test_last_used_is_recorded_off_the_request_path(auth: AuthService, database: Database) -> None:
    await auth.create_user(username="gina")
    row, token = await auth.create_key(username="gina")
    await auth.authenticate(token)
    await auth.drain()
    async with database.sessions() as session:
        first = await session.scalar(select(ApiKey.last_used_at).where(ApiKey.id == row.id))
    assert first is not None
    await auth.authenticate(token)
    assert not auth._background  # at most one write a minute per key


async def test_user_validation(auth: AuthService) -> None:
    await auth.create_user(username="hal.9000_x-y")
    with pytest.raises(HearthError) as dup:
        await auth.create_user(username="hal.9000_x-y")
    assert dup.value.status == 409 and dup.value.code == "user_exists"
    for bad in ("", "has space", "x" * 65, "émile", "a/b"):
        with pytest.raises(HearthError) as invalid:
            await auth.create_user(username=bad)
        assert invalid.value.status == 422
    with pytest.raises(HearthError) as role:
        await auth.create_user(username="root", role="superuser")
    assert role.value.status == 422
    assert await auth.get_user_by_name(username="nobody") is None
    assert [u.username for u in await auth.list_users()] == ["hal.9000_x-y"]
    with pytest.raises(HearthError) as missing:
        await auth.create_key(username="nobody")
    assert missing.value.status == 404


async def test_key_queries_are_scoped_by_owner(auth: AuthService) -> None:
    owner = await auth.create_user(username="owner")
    other = await auth.create_user(username="other")
    row, token = await auth.create_key(username="owner")
    await auth.create_key(username="other")
    assert [k.id for k in await auth.list_keys(user_id=owner.id)] == [row.id]
    with pytest.raises(HearthError) as foreign:
        await auth.revoke_key(key_id=row.id, user_id=other.id)
    assert foreign.value.status == 404
    assert await key_of(auth, token) == row.id  # not revoked
    assert (await auth.get_key(key_id=row.id, user_id=owner.id)).id == row.id


async def test_ensure_first_admin(auth: AuthService, tmp_path: Path) -> None:
    token = await auth.ensure_first_admin(data_dir=tmp_path)
    assert token.startswith("hk-")
    path = tmp_path / "admin-key.txt"
    assert path.read_text().strip() == token
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    principal = await auth.authenticate(token)
    assert principal is not None and principal.is_admin and principal.username == "admin"
    assert await auth.ensure_first_admin(data_dir=tmp_path) is None
    assert len(await auth.list_users()) == 1


# ---- rate limits ----


def _principal(key_id: str = "k1", rpm: int | None = None, tpm: int | None = None) -> Principal:
    return Principal("u1", "u", "user", key_id, "standard", rpm, tpm)


def _refused(limiter: RateLimiter, principal: Principal) -> HearthError:
    with pytest.raises(HearthError) as refused:
        limiter.check(principal)
    return refused.value


def test_rpm_refuses_with_retry_after_and_refills() -> None:
    clock = FakeClock()
    limiter = RateLimiter(clock=clock)
    key = _principal(rpm=2)
    limiter.check(key)
    limiter.check(key)
    error = _refused(limiter, key)
    assert error.status == 429 and error.code == "rate_limit_exceeded"
    assert "request" in error.message and "2 requests per minute" in error.message
    assert error.headers["Retry-After"] == "30"  # one request refills in 60/2 seconds
    assert error.body()["error"]["type"] == "rate_limit_error"
    clock.advance(29)
    assert _refused(limiter, key).headers["Retry-After"] == "1"
    clock.advance(1)
    limiter.check(key)
    clock.advance(3600)  # refills up to the capacity, never beyond
    limiter.check(key)
    limiter.check(key)
    _refused(limiter, key)


def test_tpm_refuses_after_tokens_are_spent() -> None:
    clock = FakeClock()
    limiter = RateLimiter(clock=clock)
    key = _principal(tpm=600)  # refills 10 tokens a second
    limiter.check(key)
    limiter.add_tokens(key, 500)
    limiter.check(key)  # 100 left: still allowed
    limiter.add_tokens(key, 200)  # a request may overshoot: the budget goes negative
    error = _refused(limiter, key)
    assert "token" in error.message and "600 tokens per minute" in error.message
    retry = int(error.headers["Retry-After"])
    assert retry >= 10  # -100 tokens at 10/s: positive again just after 10 s
    clock.advance(retry)
    limiter.check(key)


def test_limits_are_per_key_and_key_limits_beat_defaults() -> None:
    clock = FakeClock()
    limiter = RateLimiter(default_rpm=1, default_tpm=None, clock=clock)
    a, b = _principal("a"), _principal("b")
    limiter.check(a)
    _refused(limiter, a)
    limiter.check(b)  # a's budget is not b's
    generous = _principal("c", rpm=100)
    for _ in range(100):
        limiter.check(generous)
    _refused(limiter, generous)
    unlimited = RateLimiter(clock=clock)
    for _ in range(1000):
        unlimited.check(_principal("d"))
    unlimited.add_tokens(_principal("d"), 10**9)
    unlimited.check(_principal("d"))
    tpm_default = RateLimiter(default_tpm=100, clock=clock)
    own = _principal("e", tpm=10_000)
    tpm_default.add_tokens(own, 5_000)
    tpm_default.check(own)


# ---- HTTP routes ----


@pytest.fixture
async def client(database: Database, tmp_path: Path):  # type: ignore[no-untyped-def]
    auth = AuthService(database, cache_seconds=60.0)
    app = FastAPI()
    install_error_handlers(app)
    app.include_router(router)
    app.state.platform = SimpleNamespace(auth=auth, db=database, ratelimits=RateLimiter())
    admin_key = await auth.ensure_first_admin(data_dir=tmp_path)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://hearth") as http:
        http.headers["Authorization"] = f"Bearer {admin_key}"
        yield http
    await auth.drain()


def _error(response: httpx.Response, status: int, code: str) -> dict:
    assert response.status_code == status, response.text
    error = response.json()["error"]
    assert set(error) == {"message", "type", "param", "code"}
    assert error["code"] == code
    return error


async def test_admin_routes(client: httpx.AsyncClient) -> None:
    created = await client.post("/api/admin/users", json={"username": "ivy", "premium": True})
    assert created.status_code == 201, created.text
    assert created.json()["username"] == "ivy" and created.json()["role"] == "user"
    _error(await client.post("/api/admin/users", json={"username": "ivy"}), 409, "user_exists")

    users = (await client.get("/api/admin/users")).json()
    assert [u["username"] for u in users["data"]] == ["admin", "ivy"]

    made = await client.post("/api/admin/keys", json={"user": "ivy", "name": "phone", "rpm_limit": 10})
    assert made.status_code == 201, made.text
    body = made.json()
    user_key = body["key"]
    assert user_key.startswith("hk-") and body["prefix"] == user_key[:11] and body["priority"] == "premium"
    assert "key_hash" not in made.text

    listed = await client.get("/api/admin/keys", params={"user": "ivy"})
    assert [k["id"] for k in listed.json()["data"]] == [body["id"]]
    assert user_key not in listed.text and "key_hash" not in listed.text
    assert len((await client.get("/api/admin/keys")).json()["data"]) == 2
    _error(await client.get("/api/admin/keys", params={"user": "ghost"}), 404, "user_not_found")

    as_user = {"Authorization": f"Bearer {user_key}"}
    me = await client.get("/api/me", headers=as_user)
    assert me.status_code == 200, me.text
    assert me.json()["user"]["username"] == "ivy" and me.json()["key"]["id"] == body["id"]
    assert user_key not in me.text
    _error(await client.get("/api/admin/users", headers=as_user), 403, "admin_required")

    revoked = await client.delete(f"/api/admin/keys/{body['id']}")
    assert revoked.status_code == 200 and revoked.json()["revoked_at"] is not None
    _error(await client.get("/api/me", headers=as_user), 401, "invalid_api_key")
    _error(await client.delete("/api/admin/keys/nope"), 404, "key_not_found")


async def test_the_last_admin_key_cannot_be_revoked(client: httpx.AsyncClient) -> None:
    """Issue 20, row 5: revoking the only working admin key would lock every admin out of the API."""
    me = (await client.get("/api/me")).json()
    refused = _error(await client.delete(f"/api/admin/keys/{me['key']['id']}"), 409, "last_admin_key")
    assert refused["param"] == "key_id" and "create another admin key" in refused["message"]
    assert (await client.get("/api/me")).status_code == 200  # still works

    second = (await client.post("/api/admin/keys", json={"user": "admin", "name": "spare"})).json()
    assert (await client.delete(f"/api/admin/keys/{me['key']['id']}")).status_code == 200
    spare = {"Authorization": f"Bearer {second['key']}"}
    _error(await client.delete(f"/api/admin/keys/{second['id']}", headers=spare), 409, "last_admin_key")
    assert (await client.get("/api/admin/users", headers=spare)).status_code == 200


async def test_auth_failures(client: httpx.AsyncClient) -> None:
    missing = await client.get("/api/me", headers={"Authorization": ""})
    assert _error(missing, 401, "missing_api_key")["type"] == "authentication_error"
    assert missing.headers["www-authenticate"] == "Bearer"
    _error(await client.get("/api/me", headers={"Authorization": "Basic abc"}), 401, "missing_api_key")
    _error(await client.get("/api/me", headers={"Authorization": "Bearer hk-nope"}), 401, "invalid_api_key")
    unauthenticated = await client.post(
        "/api/admin/users", json={"username": "x"}, headers={"Authorization": ""}
    )
    _error(unauthenticated, 401, "missing_api_key")


async def test_bad_bodies(client: httpx.AsyncClient) -> None:
    raw = {"Content-Type": "application/json"}
    _error(await client.post("/api/admin/users", content=b"{nope", headers=raw), 400, "invalid_json")
    assert (
        _error(await client.post("/api/admin/users", json={"username": 5}), 422, "invalid_value")["param"]
        == "username"
    )
    _error(await client.post("/api/admin/users", json={"username": "bad name"}), 422, "invalid_value")
    _error(
        await client.post("/api/admin/users", json={"username": "ok", "role": "root"}), 422, "invalid_value"
    )
    _error(await client.post("/api/admin/users", json={"username": "ok", "extra": 1}), 422, "invalid_value")
    _error(
        await client.post("/api/admin/keys", json={"user": "admin", "rpm_limit": "many"}),
        422,
        "invalid_value",
    )
    _error(await client.post("/api/admin/keys", json={"user": "admin", "rpm_limit": 0}), 422, "invalid_value")
    _error(
        await client.post("/api/admin/keys", json={"user": "admin", "priority": "gold"}), 422, "invalid_value"
    )
    _error(await client.post("/api/admin/keys", json={"user": "ghost"}), 404, "user_not_found")
    _error(await client.post("/api/admin/keys", json=[1, 2]), 422, "invalid_value")


# ---- CLI ----


def test_cli_users_and_keys(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)  # no stray .env
    monkeypatch.setenv("HEARTH_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.delenv("HEARTH_DATABASE_URL", raising=False)
    cli = typer.Typer()
    cli.add_typer(users_app, name="users")
    cli.add_typer(keys_app, name="keys")
    runner = CliRunner()

    def hearth(*args: str):  # type: ignore[no-untyped-def]
        return runner.invoke(cli, list(args))

    created = hearth("users", "create", "jo", "--premium")
    assert created.exit_code == 0, created.output
    assert "jo" in created.stdout
    assert hearth("users", "create", "root", "--admin").exit_code == 0
    dup = hearth("users", "create", "jo")
    assert dup.exit_code == 1 and "already exists" in dup.output and "Traceback" not in dup.output
    assert hearth("users", "create", "bad name").exit_code == 1
    listed = hearth("users", "list")
    assert listed.exit_code == 0 and "jo" in listed.stdout and "root" in listed.stdout

    made = hearth("keys", "create", "--user", "jo", "--name", "cli", "--rpm", "30")
    assert made.exit_code == 0, made.output
    token = made.stdout.strip()
    assert token.startswith("hk-") and len(token) == 43
    assert hearth("keys", "create", "--user", "ghost").exit_code == 1

    keys = hearth("keys", "list", "--user", "jo")
    assert keys.exit_code == 0 and token[:11] in keys.stdout and token not in keys.stdout
    assert "premium" in keys.stdout

    db_url = f"sqlite+aiosqlite:///{(tmp_path / 'data' / 'hearth.db').resolve()}"

    async def authenticate() -> Principal | None:
        db = Database(db_url)
        auth = AuthService(db)
        try:
            return await auth.authenticate(token)
        finally:
            await auth.drain()
            await db.close()

    principal = asyncio.run(authenticate())
    assert principal is not None and principal.username == "jo" and principal.rpm_limit == 30
    assert principal.priority == "premium"

    revoked = hearth("keys", "revoke", principal.key_id)
    assert revoked.exit_code == 0, revoked.output
    assert asyncio.run(authenticate()) is None
    unknown = hearth("keys", "revoke", "nope")
    assert unknown.exit_code == 1 and "no API key" in unknown.output
