"""The audit log: admin actions (users, keys, collection shares, plan deploys) written once per event from
the bus, in-process and over NATS JetStream, on SQLite and PostgreSQL."""

from __future__ import annotations

import httpx
import pytest
from sqlalchemy import select
from typer.testing import CliRunner

from hearth.audit.actions import AUDITED
from hearth.audit.log import CONSUMER, AuditLog
from hearth.auth.service import AuthService
from hearth.cli.main import app as cli
from hearth.events.models import OutboxEvent
from hearth.planner.events import PlanDeployed
from hearth.platform.db import Database
from hearth.rag.events import CollectionShared, CollectionUnshared
from tests.events_helpers import NATS_URL, event_bus, redeliver
from tests.harness import run_hearth
from tests.helpers import wait_for_async, wait_until


@pytest.mark.parametrize("transport", ["in-process", "nats"])
async def test_admin_actions_are_logged_once_newest_first(
    database: Database, prefix: str, transport: str
) -> None:
    async with event_bus(database, transport, prefix) as bus:
        auth = AuthService(database, bus=bus)
        log = AuditLog(db=database, users=auth)
        bus.subscribe(
            CONSUMER,
            log.record,
            contexts={c.context for c in AUDITED},
            types={c.type_name() for c in AUDITED},
            idempotent=True,
        )
        await bus.start()
        root = await auth.create_user(username="root", role="admin")
        root_key, token = await auth.create_key(username="root")
        assert await auth.authenticate(token) is not None  # from here on this task acts as "root"
        carol = await auth.create_user(username="carol")
        key, plaintext = await auth.create_key(username="carol", name="laptop")
        await auth.revoke_key(key_id=key.id)
        await auth.revoke_key(key_id=key.id)  # already revoked: no second entry
        await auth.set_user_disabled(user_id=carol.id)
        await bus.publish(CollectionShared(collection_id="c1", owner_id=root.id, user_id=carol.id))
        await bus.publish(
            PlanDeployed(name="qwen", namespace="ai", model_id="Qwen/Qwen3-8B", gpu="L4", replicas=2,
                         url=None, ready=False, alias=None)
        )  # fmt: skip

        async def logged(count: int) -> bool:
            return len((await log.entries(limit=100)).entries) == count

        await wait_for_async(lambda: logged(8), what="eight audit entries")

        async with database.transaction() as s:
            revoked_id = await s.scalar(select(OutboxEvent.id).where(OutboxEvent.type == "KeyRevoked"))
        await redeliver(bus, database, revoked_id)
        await bus.publish(CollectionUnshared(collection_id="c1", owner_id=root.id, user_id=carol.id))
        await wait_for_async(lambda: logged(9), what="the entry published after the redelivery")

    page = await log.entries(limit=100)
    expected = [
        ("collection.unshared", "root", "c1"),
        ("plan.deployed", None, "ai/qwen"),
        ("collection.shared", "root", "c1"),
        ("user.disabled", "root", "carol"),
        ("key.revoked", "root", key.id),  # once, though delivered twice
        ("key.created", "root", key.id),
        ("user.created", "root", "carol"),
        ("key.created", None, root_key.id),  # before "root" authenticated: no actor
        ("user.created", None, "root"),
    ]
    assert [(e.action, e.actor, e.target) for e in page.entries] == expected
    assert page.entries[2].details == {"user": "carol", "user_id": carol.id}
    assert page.entries[5].details == {
        "user": "carol",
        "user_id": carol.id,
        "name": "laptop",
        "priority": "standard",
    }
    async with database.transaction() as s:
        payloads = b"".join(await s.scalars(select(OutboxEvent.payload)))
    assert plaintext[3:].encode() not in payloads and plaintext[3:11].encode() not in payloads  # no secret

    first, last = await log.entries(limit=4), await log.entries(limit=4, offset=8)
    assert first.has_more and [e.action for e in first.entries] == [a for a, _, _ in expected[:4]]
    assert not last.has_more and [e.target for e in last.entries] == ["root"]
    assert [e.target for e in (await log.entries(action="key.created")).entries] == [key.id, root_key.id]
    assert [e.action for e in (await log.entries(actor="root", limit=2)).entries] == [
        "collection.unshared",
        "collection.shared",
    ]


@pytest.mark.parametrize("transport", ["in-process", "nats"])
def test_audit_over_http_and_cli(tmp_path, database_url: str, prefix: str, transport: str) -> None:
    nats = {"nats_url": NATS_URL, "nats_prefix": prefix} if transport == "nats" else {}
    with run_hearth(tmp_path, database_url=database_url, **nats) as hearth:
        admin = hearth.headers()
        r = httpx.post(f"{hearth.url}/api/admin/users", json={"username": "erin"}, headers=admin)
        assert r.status_code == 201
        key = httpx.post(f"{hearth.url}/api/admin/keys", json={"user": "erin"}, headers=admin).json()
        assert httpx.delete(f"{hearth.url}/api/admin/keys/{key['id']}", headers=admin).status_code == 200

        def get(**params: object) -> httpx.Response:
            return httpx.get(f"{hearth.url}/api/admin/audit", params=params, headers=admin)

        def three() -> list[dict] | None:
            entries = get().json()["data"]
            return entries if len(entries) == 3 else None

        entries = wait_until(three, within=20, what="three audit entries")
        assert [(e["action"], e["actor"], e["target"]) for e in entries] == [
            ("key.revoked", "admin", key["id"]),
            ("key.created", "admin", key["id"]),
            ("user.created", "admin", "erin"),
        ]
        assert entries[1]["details"] == {
            "user": "erin",
            "user_id": key["user_id"],
            "name": "",
            "priority": "standard",
        }

        assert [e["target"] for e in get(action="user.created").json()["data"]] == ["erin"]
        assert len(get(actor="admin").json()["data"]) == 3 and get(actor="erin").json()["data"] == []
        page = get(limit=2).json()
        assert page["has_more"] and len(page["data"]) == 2
        page = get(limit=2, offset=2).json()
        assert not page["has_more"] and [e["action"] for e in page["data"]] == ["user.created"]

        bad = get(action="key.stolen")
        assert bad.status_code == 400 and bad.json()["error"]["param"] == "action"
        assert get(limit=0).status_code == 422
        assert get(offset=2**63).json()["error"]["param"] == "query.offset"  # past bigint: 422, not a 500
        user_key = hearth.headers(httpx.post(f"{hearth.url}/api/admin/keys", json={"user": "erin"},
                                             headers=admin).json()["key"])  # fmt: skip
        assert httpx.get(f"{hearth.url}/api/admin/audit", headers=user_key).status_code == 403

        result = CliRunner().invoke(
            cli, ["audit", "--action", "key.revoked", "--url", hearth.url, "--api-key", hearth.admin_key]
        )
        assert result.exit_code == 0, result.output
        (row,) = [line for line in result.output.splitlines() if "key.revoked" in line]
        assert [c.strip() for c in row.split("│")[2:5]] == ["key.revoked", "admin", key["id"]]
        result = CliRunner().invoke(
            cli, ["audit", "--action", "nope", "--url", hearth.url, "--api-key", hearth.admin_key]
        )
        assert result.exit_code == 1 and "unknown action 'nope'" in result.output


def test_command_line_admin_actions_reach_the_audit_log(tmp_path, database_url: str) -> None:
    """`hearth users create` writes to the database directly; its event waits in the outbox until the
    running server delivers it, with no actor (no API key made the change)."""
    with run_hearth(tmp_path, database_url=database_url) as hearth:
        env = {"HEARTH_DATABASE_URL": database_url, "HEARTH_DATA_DIR": str(tmp_path / "cli-data")}
        result = CliRunner().invoke(cli, ["users", "create", "frank"], env=env)
        assert result.exit_code == 0, result.output

        def created() -> list[dict] | None:
            entries = httpx.get(
                f"{hearth.url}/api/admin/audit", params={"action": "user.created"}, headers=hearth.headers()
            ).json()["data"]
            return entries or None

        (entry,) = wait_until(created, within=20, what="the command line's user.created entry")
        assert (entry["actor"], entry["target"]) == (None, "frank")
