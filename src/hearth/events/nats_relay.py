"""NATS JetStream transport: the pump's delivery to streams, and handlers fed from durable pull consumers.

One stream per context (`HEARTH_INFERENCE` on `hearth.inference.>`), subject `hearth.<context>.<Type>`.
An outbox row is marked dispatched only after JetStream acks the publish (the pump marks a whole batch in
one transaction), and `Nats-Msg-Id` = event id lets JetStream drop the copy we send again when we crashed
between its ack and our update.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
from typing import TYPE_CHECKING

import nats
import nats.errors
import nats.js.errors
from nats.aio.client import Client
from nats.aio.msg import Msg
from nats.js import JetStreamContext
from nats.js.api import AckPolicy, ConsumerConfig, DeliverPolicy, RetentionPolicy, StorageType, StreamConfig

from hearth.events import codec, outbox
from hearth.events.consumer import Subscription
from hearth.events.pump import Outage, Outcome
from hearth.events.schemas import known_contexts

if TYPE_CHECKING:
    from hearth.events.bus import EventBus

log = logging.getLogger("hearth.events")

TYPE_HEADER = "Hearth-Type"
CONTENT_TYPE_HEADER = "Content-Type"
STREAM_MAX_AGE = 7 * 24 * 3600.0  # seconds; also how far back a brand-new durable consumer replays
DUPLICATE_WINDOW = 300.0  # seconds JetStream remembers Nats-Msg-Id; covers relay retries after a crash
PUBLISH_TIMEOUT = 2.0
FETCH_BATCH = 32
FETCH_TIMEOUT = 1.0

# Errors that mean "NATS is not reachable right now": the row waits, no attempt is spent.
_TRANSPORT_ERRORS = (
    TimeoutError,  # nats.errors.TimeoutError subclasses it
    nats.errors.ConnectionClosedError,
    nats.errors.ConnectionReconnectingError,
    nats.errors.ConnectionDrainingError,
    nats.errors.StaleConnectionError,
    nats.errors.OutboundBufferLimitError,
    nats.errors.NoRespondersError,
    nats.js.errors.NoStreamResponseError,
    nats.js.errors.ServiceUnavailableError,
    OSError,
)


def _token(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9_-]", "_", name)


class NatsRelay:
    """The JetStream side of the bus: a `Delivery` for the outbox pump, and the consumers feeding handlers."""

    def __init__(
        self,
        bus: EventBus,
        url: str,
        *,
        ack_wait: float,
        reconnect_wait: float,
        publish_timeout: float = PUBLISH_TIMEOUT,
    ) -> None:
        self.bus = bus
        self.publish_timeout = publish_timeout
        self.url = url
        self.ack_wait = ack_wait
        self.reconnect_wait = reconnect_wait
        self.nc: Client | None = None
        self.js: JetStreamContext | None = None
        self.running = False
        self._ready = asyncio.Event()  # connected and initial streams ensured
        self._streams: set[str] = set()  # contexts whose stream exists with our config
        self._tasks: set[asyncio.Task[None]] = set()
        self._consumer_tasks: dict[tuple[str, str], asyncio.Task[None]] = {}

    # --- naming -------------------------------------------------------------------------------------

    def stream_name(self, context: str) -> str:
        return f"{_token(self.bus.prefix).upper()}_{_token(context).upper()}"

    def subject(self, context: str, type_name: str = ">") -> str:
        return f"{self.bus.prefix}.{context}.{type_name}"

    def durable_name(self, consumer: str, context: str) -> str:
        return f"{_token(consumer)}-{_token(context)}"

    # --- erasure ------------------------------------------------------------------------------------

    async def delete_events(self, ids_by_context: dict[str, set[str]], *, timeout: float = 10.0) -> int:
        """Delete the messages whose `Nats-Msg-Id` (the event id) is given from each context's stream (a
        user's erasure); how many. Streams have no index by message id, so each stream is read through
        once (`next`: one request per message, skipping deleted sequence numbers). Raises when NATS is
        unreachable: the caller must not forget the ids before this succeeded."""
        await asyncio.wait_for(self._ready.wait(), timeout)
        assert self.js is not None
        deleted = 0
        for context, ids in ids_by_context.items():
            if not ids:
                continue
            name = self.stream_name(context)
            try:
                info = await self.js.stream_info(name)
            except nats.js.errors.NotFoundError:
                continue
            seq, last = info.state.first_seq, info.state.last_seq
            while seq and seq <= last:
                try:
                    msg = await self.js.get_msg(name, seq, subject=self.subject(context), next=True)
                except nats.js.errors.NotFoundError:
                    break  # nothing at or after seq
                if msg.seq is None or msg.seq > last:
                    break
                if (msg.headers or {}).get("Nats-Msg-Id") in ids:
                    await self.js.delete_msg(name, msg.seq)
                    deleted += 1
                seq = msg.seq + 1
        return deleted

    # --- lifecycle ----------------------------------------------------------------------------------

    async def start(self) -> None:
        self.running = True
        # Connecting happens in the background: the platform must come up while NATS is down.
        self._spawn(self._connect(), "hearth-events-nats-connect")
        for sub in self.bus.subscriptions:
            self.add_subscription(sub)

    async def stop(self) -> None:
        self.running = False
        tasks = [*self._tasks, *self._consumer_tasks.values()]
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        self._tasks.clear()
        self._consumer_tasks.clear()
        self._ready.clear()
        self._streams.clear()
        if self.nc is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self.nc.close(), timeout=5)
            self.nc = self.js = None

    def add_subscription(self, sub: Subscription) -> None:
        if not self.running:
            return  # start() picks it up
        contexts = sub.contexts if sub.contexts is not None else known_contexts()
        for context in sorted(contexts):
            key = (sub.consumer, context)
            if key not in self._consumer_tasks:
                task = asyncio.create_task(self._consume(sub, context), name=f"hearth-events-{key}")
                self._consumer_tasks[key] = task

    def _spawn(self, coro, name: str) -> None:  # type: ignore[no-untyped-def]
        task = asyncio.create_task(coro, name=name)
        self._tasks.add(task)

    # --- connection and streams ---------------------------------------------------------------------

    async def _connect(self) -> None:
        warned = False

        async def on_error(exc: Exception) -> None:
            # nats-py reports every failed (re)connect attempt; say it loudly once, then quietly.
            nonlocal warned
            if not warned:
                log.warning("nats: %s unreachable (%r); events wait in the outbox, retrying", self.url, exc)
                warned = True
            else:
                log.debug("nats: %r", exc)

        async def on_disconnected() -> None:
            if self.running:
                log.warning("nats: disconnected from %s; events wait in the outbox", self.url)

        async def on_reconnected() -> None:
            nonlocal warned
            warned = False
            log.info("nats: reconnected")
            self.bus.wake()

        delay = self.reconnect_wait
        while self.nc is None:
            try:
                # With max_reconnect_attempts=-1 nats-py also retries the *first* connect forever.
                self.nc = await nats.connect(
                    self.url,
                    name="hearth-events",
                    allow_reconnect=True,
                    max_reconnect_attempts=-1,
                    reconnect_time_wait=self.reconnect_wait,
                    connect_timeout=2,
                    error_cb=on_error,
                    disconnected_cb=on_disconnected,
                    reconnected_cb=on_reconnected,
                )
            except Exception as exc:  # e.g. authorization refused: keep trying, loudly
                log.warning("nats: cannot connect to %s (%r); retrying in %.1fs", self.url, exc, delay)
                await asyncio.sleep(delay)
                delay = min(delay * 2, 10.0)
        warned = False
        self.js = self.nc.jetstream(timeout=self.publish_timeout)
        delay = self.reconnect_wait
        while True:
            try:
                for context in sorted(known_contexts() | self._subscribed_contexts()):
                    await self._ensure_stream(context)
                break
            except Exception as exc:
                log.warning("nats: cannot set up streams yet (%r); retrying in %.1fs", exc, delay)
                await asyncio.sleep(delay)
                delay = min(delay * 2, 10.0)
        log.info("nats: connected to %s, streams ready", self.url)
        self._ready.set()
        self.bus.wake()

    def _subscribed_contexts(self) -> set[str]:
        return {c for s in self.bus.subscriptions if s.contexts for c in s.contexts}

    async def _ensure_stream(self, context: str) -> None:
        if context in self._streams:
            return
        assert self.js is not None
        config = StreamConfig(
            name=self.stream_name(context),
            subjects=[self.subject(context)],
            retention=RetentionPolicy.LIMITS,
            storage=StorageType.FILE,
            max_age=STREAM_MAX_AGE,
            duplicate_window=DUPLICATE_WINDOW,
        )
        try:
            await self.js.stream_info(config.name)
        except nats.js.errors.NotFoundError:
            await self.js.add_stream(config)
            log.info("nats: created stream %s", config.name)
        else:
            await self.js.update_stream(config)
        self._streams.add(context)

    # --- delivery: outbox -> JetStream (driven by the pump) ----------------------------------------------

    def ready(self) -> bool:
        return self._ready.is_set()

    async def deliver(self, rows: list[outbox.OutboxEvent], outcome: Outcome) -> None:
        """Publish rows in order, each acked before the next; an unreachable server ends the pass."""
        assert self.js is not None
        for row in rows:
            headers = {"Nats-Msg-Id": row.id, CONTENT_TYPE_HEADER: row.content_type, TYPE_HEADER: row.type}
            try:
                await self._ensure_stream(row.context)
                ack = await self.js.publish(self.subject(row.context, row.type), row.payload, headers=headers)
            except _TRANSPORT_ERRORS as exc:
                if isinstance(exc, nats.js.errors.NoStreamResponseError):
                    self._streams.discard(row.context)  # stream deleted behind our back: recreate it
                raise Outage from exc
            except Exception as exc:  # rejected by the server (payload too big, bad subject): a row problem
                status = await outcome.failed(row, repr(exc))
                log.warning("nats: relay of %s %s failed (%s): %r", row.type, row.id, status, exc)
                continue
            outcome.done(row)
            if ack.duplicate:
                log.debug("nats: %s %s was already in the stream (deduplicated)", row.type, row.id)

    # --- consumers: JetStream -> handlers -----------------------------------------------------------

    async def _consume(self, sub: Subscription, context: str) -> None:
        delay = self.reconnect_wait
        while True:
            psub = None
            try:
                await self._ready.wait()
                psub = await self._bind(sub, context)
                delay = self.reconnect_wait
                while True:
                    try:
                        msgs = await psub.fetch(FETCH_BATCH, timeout=FETCH_TIMEOUT)
                    except TimeoutError:
                        continue
                    for msg in msgs:
                        await self._handle(sub, context, msg)
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                log.warning("nats: consumer %s/%s interrupted (%r); retrying", sub.consumer, context, exc)
                await asyncio.sleep(delay)
                delay = min(delay * 2, 10.0)
            finally:
                if psub is not None:
                    with contextlib.suppress(Exception):
                        await psub.unsubscribe()

    async def _bind(self, sub: Subscription, context: str) -> JetStreamContext.PullSubscription:
        assert self.js is not None
        await self._ensure_stream(context)
        stream, durable = self.stream_name(context), self.durable_name(sub.consumer, context)
        # A single type can be filtered by the server; several need filter_subjects (NATS 2.10+), so
        # those are filtered here instead.
        only = next(iter(sub.types)) if sub.types is not None and len(sub.types) == 1 else ">"
        config = ConsumerConfig(
            name=durable,
            durable_name=durable,
            deliver_policy=DeliverPolicy.ALL,
            ack_policy=AckPolicy.EXPLICIT,
            ack_wait=self.ack_wait,
            max_deliver=self.bus.retry.max_attempts,
            filter_subject=self.subject(context, only),
            max_ack_pending=1000,
        )
        try:
            await self.js.add_consumer(stream, config)
        except nats.js.errors.BadRequestError as exc:
            # An existing durable whose config cannot be changed in place: keep using it as it is.
            log.warning("nats: keeping existing consumer %s on %s: %s", durable, stream, exc.description)
        return await self.js.pull_subscribe_bind(durable=durable, stream=stream)

    async def _handle(self, sub: Subscription, context: str, msg: Msg) -> None:
        headers = msg.headers or {}
        type_name = headers.get(TYPE_HEADER) or msg.subject.rsplit(".", 1)[-1]
        if sub.types is not None and type_name not in sub.types:
            await msg.ack()
            return
        try:
            event = codec.decode(type_name, headers.get(CONTENT_TYPE_HEADER, codec.JSON), msg.data)
        except Exception as exc:
            log.error("nats: %s cannot decode %s on %s, dropping: %r", sub.consumer, type_name, context, exc)
            self.bus.counters.dead += 1
            await msg.term()
            return
        try:
            handled = await sub.deliver(self.bus.db, event)
        except Exception as exc:
            self.bus.counters.failed += 1
            delivered = msg.metadata.num_delivered or 1
            if delivered >= self.bus.retry.max_attempts:
                self.bus.counters.dead += 1
                log.error("handler %s gave up on %s %s after %d deliveries: %r", sub.consumer, type_name,
                          event.id, delivered, exc)  # fmt: skip
                await msg.term()
            else:
                log.warning("handler %s failed on %s %s: %r", sub.consumer, type_name, event.id, exc)
                await msg.nak(delay=self.bus.retry.delay(delivered))
            return
        if handled:
            self.bus.counters.consumed += 1
        await msg.ack()
