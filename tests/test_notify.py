"""The notify context over real loopback servers: an SMTP server (aiosmtpd) and a web push endpoint that
checks what a push service checks (aes128gcm body it decrypts with the subscription's private key, the
VAPID JWT's ES256 signature, audience and expiry against the server's published key). The app runs in
process (HTTP over ASGI), on SQLite and PostgreSQL; the service's clock is moved to reach quiet hours'
end and retry times instead of waiting."""

from __future__ import annotations

import asyncio
import base64
import json
import os
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime, timedelta
from email import message_from_bytes
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import http_ece
import httpx
import pytest
import yaml
from aiohttp import web
from aiosmtpd.controller import Controller
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, utils
from sqlalchemy import select

from hearth.app import create_app
from hearth.config import Settings
from hearth.events.models import OutboxEvent
from hearth.notify.ports import NOTIFIER, SERVICE
from hearth.notify.vapid import KEY_FILE
from tests.harness import free_port
from tests.helpers import wait_for_async

SUBJECT = "mailto:ops@hearth.test"


def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


class Mailbox:
    """aiosmtpd's handler: every message it accepts."""

    def __init__(self) -> None:
        self.messages: list[Any] = []

    async def handle_DATA(self, server, session, envelope) -> str:  # type: ignore[no-untyped-def]
        mail = message_from_bytes(envelope.content)
        self.messages.append((envelope.rcpt_tos, mail))
        return "250 OK"


class PushEndpoint:
    """A push service on loopback: checks the request like one, decrypts the payload, answers as told."""

    def __init__(self) -> None:
        self.key = ec.generate_private_key(ec.SECP256R1())  # the browser's subscription key pair
        self.auth = os.urandom(16)
        self.received: list[dict[str, Any]] = []
        self.problems: list[str] = []
        self.answers: list[int] = []  # statuses to answer next (then 201)
        self.server_key: str | None = None  # the VAPID key Hearth publishes; set by the test
        self.port = free_port()

    @property
    def origin(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def subscription(self, name: str = "sub1") -> dict[str, Any]:
        public = self.key.public_key().public_bytes(
            serialization.Encoding.X962, serialization.PublicFormat.UncompressedPoint
        )
        return {
            "endpoint": f"{self.origin}/push/{name}",
            "keys": {"p256dh": b64(public), "auth": b64(self.auth)},
        }

    def _check_vapid(self, header: str) -> None:
        scheme, _, params = header.partition(" ")
        assert scheme.lower() == "vapid", header
        fields = dict(p.strip().split("=", 1) for p in params.split(","))
        token, k = fields["t"], fields["k"]
        assert k == self.server_key, "signed with another key than the one Hearth publishes"
        head, claims, signature = token.split(".")
        assert json.loads(unb64(head)) == {"typ": "JWT", "alg": "ES256"}
        public = ec.EllipticCurvePublicKey.from_encoded_point(ec.SECP256R1(), unb64(k))
        raw = unb64(signature)
        der = utils.encode_dss_signature(int.from_bytes(raw[:32], "big"), int.from_bytes(raw[32:], "big"))
        public.verify(der, f"{head}.{claims}".encode(), ec.ECDSA(hashes.SHA256()))  # raises when forged
        body = json.loads(unb64(claims))
        assert body["aud"] == self.origin and body["sub"] == SUBJECT, body
        assert time.time() < body["exp"] <= time.time() + 24 * 3600, body

    async def handle(self, request: web.Request) -> web.Response:
        try:
            assert request.headers.get("Content-Encoding") == "aes128gcm", dict(request.headers)
            assert int(request.headers["TTL"]) > 0
            self._check_vapid(request.headers["Authorization"])
            data = await request.read()
            plain = http_ece.decrypt(data, private_key=self.key, auth_secret=self.auth, version="aes128gcm")
        except Exception as exc:  # a real push service answers 4xx; the test then sees why
            self.problems.append(f"{type(exc).__name__}: {exc}")
            return web.Response(status=400, text=str(exc))
        if self.answers:
            status = self.answers.pop(0)
            if status >= 300:
                return web.Response(status=status, text="try later" if status >= 500 else "gone")
        self.received.append({"path": request.path, **json.loads(plain)})
        return web.Response(status=201)


@asynccontextmanager
async def push_endpoint() -> AsyncIterator[PushEndpoint]:
    endpoint = PushEndpoint()
    app = web.Application()
    app.router.add_post("/push/{name}", endpoint.handle)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", endpoint.port).start()
    try:
        yield endpoint
    finally:
        await runner.cleanup()


@asynccontextmanager
async def running(
    tmp_path: Path, database_url: str, **settings: Any
) -> AsyncIterator[tuple[Any, httpx.AsyncClient]]:
    config = tmp_path / "hearth.yaml"
    config.write_text(yaml.safe_dump({"include_defaults": False}))
    options: dict[str, Any] = {
        "notify_poll_seconds": 3600.0,  # the tests call run_due themselves, after moving the clock
        "notify_vapid_subject": SUBJECT,
        **settings,
    }
    app = create_app(
        Settings(data_dir=tmp_path / "data", config_file=config, database_url=database_url, **options)
    )
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://hearth", timeout=30) as http:
            yield app, http


async def user(app: Any, name: str) -> dict[str, str]:
    auth = app.state.platform.auth
    created = await auth.create_user(username=name)
    _, token = await auth.create_key(user_id=created.id)
    return {"Authorization": f"Bearer {token}"}


def dumped(result: Any) -> list[dict[str, Any]]:
    """A Notifier result's deliveries as the API shows them."""
    return [d.model_dump(mode="json") for d in result.deliveries]


class Clock:
    def __init__(self) -> None:
        self.now = datetime.now(UTC)

    def __call__(self) -> datetime:
        return self.now


@pytest.fixture
def mailbox() -> Any:
    box = Mailbox()
    controller = Controller(box, hostname="127.0.0.1", port=free_port())
    controller.start()
    yield box, controller.port
    controller.stop()


async def test_channels_quiet_hours_retries_and_log(tmp_path: Path, database_url: str, mailbox: Any) -> None:
    box, smtp_port = mailbox
    async with (
        push_endpoint() as push,
        running(
            tmp_path, database_url, smtp_host="127.0.0.1", smtp_port=smtp_port, smtp_from="hearth@hearth.test"
        ) as (app, http),
    ):
        service = app.state.platform.ports.require(SERVICE)
        clock = Clock()
        service.clock = clock
        ana = await user(app, "ana")
        key = (await http.get("/api/notify/vapid-key", headers=ana)).json()["public_key"]
        push.server_key = key
        assert (tmp_path / "data" / "notify" / KEY_FILE).stat().st_mode & 0o777 == 0o600

        # Preferences: defaults, then bad input refused with nothing stored.
        prefs = (await http.get("/api/notify/preferences", headers=ana)).json()
        assert prefs["channels"] == ["inapp"] and prefs["email_available"] is True
        r = await http.put("/api/notify/preferences", json={"time_zone": "Mars/Olympus"}, headers=ana)
        assert r.status_code == 422 and "time zone" in r.json()["error"]["message"]
        r = await http.put("/api/notify/preferences", json={"channels": ["email"]}, headers=ana)
        assert r.status_code == 422 and r.json()["error"]["param"] == "email"
        r = await http.put(
            "/api/notify/preferences", json={"quiet_hours": {"start": "25:00", "end": "07:00"}}, headers=ana
        )
        assert r.status_code == 422
        assert (await http.get("/api/notify/preferences", headers=ana)).json()["channels"] == ["inapp"]

        r = await http.post("/api/notify/subscriptions", json=push.subscription(), headers=ana)
        assert r.status_code == 201, r.text
        body = {
            "channels": ["webpush", "email", "inapp"],
            "email": "ana@example.org",
            "time_zone": "Asia/Tokyo",
        }
        r = await http.put("/api/notify/preferences", json=body, headers=ana)
        assert r.status_code == 200 and r.json()["channels"] == ["inapp", "email", "webpush"], r.text

        # Sent at once on all three channels; the push body decrypted by the endpoint.
        r = await http.post(
            "/api/notify/test", json={"title": "Water the plants", "body": "The fern is dry."}, headers=ana
        )
        result = r.json()
        assert r.status_code == 200 and not result["deduplicated"], r.text
        assert {d["channel"]: d["status"] for d in result["deliveries"]} == {
            "inapp": "sent", "email": "sent", "webpush": "sent"
        }  # fmt: skip
        assert push.problems == [] and [m["title"] for m in push.received] == ["Water the plants"]
        ((to, mail),) = box.messages
        assert to == ["ana@example.org"] and mail["Subject"] == "Water the plants"
        assert "The fern is dry." in mail.get_payload() and mail["From"] == "hearth@hearth.test"

        # Dedupe: the same key within the window is sent once; after the window, again.
        notifier = app.state.platform.ports.require(NOTIFIER)
        user_id = await app.state.platform.auth.user_id_of("ana")
        args = {"topic": "tip", "dedupe_key": "tip-42", "title": "Stretch", "body": "Stand up."}
        first = await notifier.notify(user_id, **args)
        again = await notifier.notify(user_id, **args)
        assert len(first.deliveries) == 3 and again.deduplicated and again.deliveries == []
        assert len(box.messages) == 2 and len(push.received) == 2
        clock.now += timedelta(hours=1, seconds=1)
        assert not (await notifier.notify(user_id, **args)).deduplicated
        assert len(box.messages) == 3

        # Quiet hours around "now" in Tokyo: email and push deferred (not dropped), the inbox gets it.
        local = clock.now.astimezone(ZoneInfo("Asia/Tokyo"))
        start, end = (
            (local - timedelta(hours=1)).strftime("%H:%M"),
            (local + timedelta(hours=1)).strftime("%H:%M"),
        )
        r = await http.put(
            "/api/notify/preferences", json={"quiet_hours": {"start": start, "end": end}}, headers=ana
        )
        assert r.status_code == 200
        quiet = await notifier.notify(
            user_id, topic="tip", dedupe_key="night", title="Late tip", body="Sleep."
        )
        status = {d["channel"]: d for d in dumped(quiet)}
        assert status["inapp"]["status"] == "sent"
        assert status["email"]["status"] == status["webpush"]["status"] == "deferred"
        due = datetime.fromisoformat(status["email"]["next_attempt_at"])
        assert timedelta(minutes=58) < due - clock.now <= timedelta(hours=1)
        assert await service.run_due() == 0 and len(box.messages) == 3  # still quiet
        clock.now = due + timedelta(seconds=1)
        assert await service.run_due() == 2
        assert box.messages[-1][1]["Subject"] == "Late tip" and push.received[-1]["title"] == "Late tip"
        await http.put("/api/notify/preferences", json={"quiet_hours": None}, headers=ana)

        # Retries with backoff: the push service fails twice, then takes it; every attempt is logged.
        push.answers = [503, 500]
        out = await notifier.notify(user_id, topic="tip", dedupe_key="retry", title="Retry me", body="Hello.")
        webpush = next(d for d in dumped(out) if d["channel"] == "webpush")
        assert webpush["status"] == "retrying" and webpush["attempts"] == 1 and "503" in webpush["last_error"]
        first_wait = datetime.fromisoformat(webpush["next_attempt_at"]) - clock.now
        assert first_wait == timedelta(seconds=30)
        clock.now += first_wait
        await service.run_due()
        log = (await http.get("/api/notify/deliveries", params={"status": "retrying"}, headers=ana)).json()[
            "data"
        ]
        assert len(log) == 1 and log[0]["attempts"] == 2
        assert datetime.fromisoformat(log[0]["next_attempt_at"]) - clock.now == timedelta(
            seconds=60
        )  # doubled
        clock.now += timedelta(seconds=60)
        await service.run_due()
        deliveries = (await http.get("/api/notify/deliveries", headers=ana)).json()["data"]
        done = next(d for d in deliveries if d["id"] == webpush["id"])
        assert done["status"] == "sent" and [a["status"] for a in done["log"]] == ["failed", "failed", "sent"]
        assert push.received[-1]["title"] == "Retry me"

        # A title with a line break (an email header cannot have one) and a body too long for a push.
        out = await notifier.notify(
            user_id, topic="tip", dedupe_key="long", title="Two\nlines", body="x" * 3000
        )
        assert {d["status"] for d in dumped(out)} == {"sent"}
        assert (
            box.messages[-1][1]["Subject"] == "Two lines"
            and "x" * 3000 in box.messages[-1][1].get_payload(decode=True).decode()
        )
        assert len(push.received[-1]["body"]) == 600 and push.received[-1]["body"].endswith("…")

        # A subscription that is gone (410) fails for good and is removed.
        push.answers = [410]
        out = await notifier.notify(user_id, topic="tip", dedupe_key="gone", title="Gone", body="x")
        gone = next(d for d in dumped(out) if d["channel"] == "webpush")
        assert gone["status"] == "failed" and gone["attempts"] == 1
        assert (await http.get("/api/notify/subscriptions", headers=ana)).json() == []
        async with app.state.platform.db.sessions() as s:
            types = set(
                (await s.scalars(select(OutboxEvent.type).where(OutboxEvent.context == "notify"))).all()
            )
        assert types == {"NotificationDelivered", "NotificationFailed"}


async def test_smtp_down_gives_up_after_max_attempts(tmp_path: Path) -> None:
    url = f"sqlite+aiosqlite:///{tmp_path / 'h.db'}"
    async with running(
        tmp_path, url, smtp_host="127.0.0.1", smtp_port=free_port(), notify_max_attempts=2
    ) as (app, http):
        service = app.state.platform.ports.require(SERVICE)
        clock = Clock()
        service.clock = clock
        bo = await user(app, "bo")
        body = {"channels": ["email"], "email": "bo@example.org"}
        assert (await http.put("/api/notify/preferences", json=body, headers=bo)).status_code == 200
        (delivery,) = (await http.post("/api/notify/test", json={}, headers=bo)).json()["deliveries"]
        assert delivery["status"] == "retrying" and "SMTP 127.0.0.1" in delivery["last_error"]
        clock.now += timedelta(seconds=31)
        await service.run_due()
        (final,) = (await http.get("/api/notify/deliveries", headers=bo)).json()["data"]
        assert final["status"] == "failed" and final["attempts"] == 2 and final["next_attempt_at"] is None
        assert [a["status"] for a in final["log"]] == ["failed", "failed"]


async def test_worker_resends_and_inbox_is_per_user(tmp_path: Path) -> None:
    url = f"sqlite+aiosqlite:///{tmp_path / 'h.db'}"
    async with (
        push_endpoint() as push,
        running(tmp_path, url, notify_poll_seconds=0.1, notify_retry_seconds=0.2) as (app, http),
    ):
        cy = await user(app, "cy")
        dee = await user(app, "dee")
        push.server_key = (await http.get("/api/notify/vapid-key", headers=cy)).json()["public_key"]
        await http.post("/api/notify/subscriptions", json=push.subscription("cy"), headers=cy)
        await http.put("/api/notify/preferences", json={"channels": ["inapp", "webpush"]}, headers=cy)
        push.answers = [500]
        out = (await http.post("/api/notify/test", json={"title": "Hi cy"}, headers=cy)).json()
        assert {d["channel"]: d["status"] for d in out["deliveries"]} == {
            "inapp": "sent",
            "webpush": "retrying",
        }

        async def resent() -> bool:
            return [m["title"] for m in push.received] == ["Hi cy"]

        await wait_for_async(resent, 15, "the worker's retry")  # by the worker itself, no call from here
        inbox = (await http.get("/api/notify/inbox", headers=cy)).json()
        assert inbox["unread"] == 1 and inbox["data"][0]["title"] == "Hi cy"
        item = inbox["data"][0]["id"]
        assert (await http.post(f"/api/notify/inbox/{item}/read", headers=dee)).status_code == 404
        assert (await http.get("/api/notify/inbox", headers=dee)).json() == {"data": [], "unread": 0}
        read = await http.post(f"/api/notify/inbox/{item}/read", headers=cy)
        assert read.status_code == 200 and read.json()["read_at"] is not None
        assert (await http.get("/api/notify/inbox", params={"unread": True}, headers=cy)).json()[
            "unread"
        ] == 0
        assert (await http.delete("/api/notify/subscriptions/nope", headers=cy)).status_code == 404
        await asyncio.sleep(0)
