"""The delivery channels: email over SMTP, web push (RFC 8030 with aes128gcm encryption, RFC 8291, and
VAPID, RFC 8292, through pywebpush) and the in-app inbox. Each sends one message to one target and raises
`ChannelError` when it could not; `permanent` says retrying cannot help (a push subscription that is gone)."""

from __future__ import annotations

import asyncio
import smtplib
from dataclasses import dataclass
from email.message import EmailMessage
from typing import Protocol

import aiohttp
import orjson
from py_vapid import Vapid02
from pywebpush import WebPushException, webpush_async

from hearth.config import Settings

PUSH_BODY_CHARS = 600  # with a 200-character title and a URL, under 4 KiB even when every char is 3 bytes


@dataclass(frozen=True)
class Message:
    notification_id: str
    topic: str
    title: str
    body: str
    url: str | None


@dataclass(frozen=True)
class Push:
    endpoint: str
    p256dh: str
    auth: str


class ChannelError(Exception):
    def __init__(self, message: str, *, permanent: bool = False) -> None:
        super().__init__(message)
        self.permanent = permanent


class EmailSender(Protocol):
    async def send(self, to: str, message: Message) -> None: ...


class SmtpEmail:
    """Plain SMTP (optionally STARTTLS and login), one connection per message: notifications are rare and
    a kept connection would time out between them. smtplib runs in a thread, off the event loop."""

    def __init__(self, settings: Settings) -> None:
        self.host = settings.smtp_host
        self.port = settings.smtp_port
        self.username = settings.smtp_username
        self.password = settings.smtp_password
        self.sender = settings.smtp_from
        self.starttls = settings.smtp_starttls
        self.timeout = settings.smtp_timeout

    @property
    def configured(self) -> bool:
        return bool(self.host)

    def _send(self, to: str, message: Message) -> None:
        mail = EmailMessage()
        mail["From"] = self.sender
        mail["To"] = to
        mail["Subject"] = " ".join(message.title.split())  # a header: no line breaks
        mail["X-Hearth-Topic"] = message.topic
        mail["X-Hearth-Notification"] = message.notification_id
        mail.set_content(message.body + (f"\n\n{message.url}\n" if message.url else "\n"))
        assert self.host is not None
        with smtplib.SMTP(self.host, self.port, timeout=self.timeout) as smtp:
            if self.starttls:
                smtp.starttls()
            if self.username:
                smtp.login(self.username, self.password or "")
            smtp.send_message(mail)

    async def send(self, to: str, message: Message) -> None:
        if not self.configured:
            raise ChannelError("email is not configured on this server (HEARTH_SMTP_HOST)", permanent=True)
        try:
            await asyncio.to_thread(self._send, to, message)
        except smtplib.SMTPRecipientsRefused as exc:
            raise ChannelError(f"the mail server refused {to}: {exc.recipients}", permanent=True) from None
        except (OSError, smtplib.SMTPException) as exc:
            raise ChannelError(f"SMTP {self.host}:{self.port}: {type(exc).__name__}: {exc}") from None


class WebPush:
    """Web push through pywebpush's aiohttp client: the payload is encrypted for the subscription's keys
    (aes128gcm) and the request signed with the server's VAPID key."""

    def __init__(self, vapid: Vapid02, *, subject: str, timeout: float = 10.0, ttl: int = 86_400) -> None:
        self.vapid = vapid
        self.subject = subject
        self.timeout = timeout
        self.ttl = ttl  # how long the push service may hold a message for an offline browser
        self._session: aiohttp.ClientSession | None = None

    async def send(self, push: Push, message: Message) -> None:
        if self._session is None or self._session.closed:
            self._session = aiohttp.ClientSession()
        # Push services take at most 4,096 bytes of encrypted payload: the body is cut to fit.
        body = (
            message.body
            if len(message.body) <= PUSH_BODY_CHARS
            else message.body[: PUSH_BODY_CHARS - 1] + "…"
        )
        payload = orjson.dumps(
            {"id": message.notification_id, "topic": message.topic, "title": message.title,
             "body": body, "url": message.url}
        ).decode()  # fmt: skip
        try:
            await webpush_async(
                {"endpoint": push.endpoint, "keys": {"p256dh": push.p256dh, "auth": push.auth}},
                data=payload,
                vapid_private_key=self.vapid,
                vapid_claims={"sub": self.subject},  # aud (the endpoint's origin) and exp are added per call
                ttl=self.ttl,
                timeout=self.timeout,
                aiohttp_session=self._session,
            )
        except WebPushException as exc:
            status = getattr(exc.response, "status", None) or getattr(exc.response, "status_code", None)
            # 404/410: the browser unsubscribed or the subscription expired; retrying cannot help.
            raise ChannelError(f"push service answered {status}: {exc.message[:300]}",
                               permanent=status in (404, 410)) from None  # fmt: skip
        except (aiohttp.ClientError, TimeoutError, OSError) as exc:
            raise ChannelError(f"push endpoint unreachable: {type(exc).__name__}: {exc}") from None
        except ValueError as exc:  # a subscription whose keys do not decode
            raise ChannelError(f"bad push subscription: {exc}", permanent=True) from None

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
