"""The event outbox's part of a user's personal data: the events about the user (their payloads carry the
user's id and, for some, their words: transcriptions, replies, titles, file names).

Erasure deletes, pending or dispatched:
1. every event that names the user as its subject (`user_id` or `owner_id`);
2. every event about a thing such an event introduced as the user's own (a collection, conversation,
   document, voice request…), since those carry the user's content without repeating the user's id.
Events where the user only acted on someone else (`actor`: an admin who created another user) stay, with
the actor replaced by the erasure's pseudonym, so the other user's history is kept.

Exported: the events of step 1 and 2, decoded. Runs after every context's erasure (the events those
publish, like CollectionDeleted, are scrubbed too) and before auth's (it looks the username up).
When NATS relays the outbox, the same events are deleted from the JetStream streams first (by their
`Nats-Msg-Id`, the event id); if NATS is unreachable the erasure fails before the outbox rows go, so
running it again still knows which messages to delete. Events where the user is only the actor keep
their JetStream copies (the relay would have to republish them)."""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Any

import msgpack
import orjson
from pydantic_core import to_jsonable_python
from sqlalchemy import delete, select, update

from hearth.auth.ports import UserDirectory
from hearth.events import codec
from hearth.events.models import ConsumedEvent, OutboxEvent
from hearth.platform.db import Database
from hearth.platform.kit.repository import in_chunks
from hearth.platform.personal_data import Rows, pseudonym

if TYPE_CHECKING:
    from hearth.events.nats_relay import NatsRelay  # nats-py is imported only when NATS is configured

SUBJECT_FIELDS = ("user_id", "owner_id")
# Ids of things that belong to whoever an event's subject is; an event naming one is about that user too.
# (Not message or response ids: every event that names one also names its user.)
OWNED_FIELDS = ("collection_id", "conversation_id", "document_id", "job_id", "request_id", "session_id")
_ID = re.compile(rb"[0-9a-f]{32}")  # new_id(): what every id above looks like
SCAN_BATCH = 2000


class OutboxPersonalData:
    context = "events"

    def __init__(self, db: Database, users: UserDirectory, relay: NatsRelay | None = None) -> None:
        self.db = db
        self.users = users
        self.relay = relay

    async def _scan(
        self,
        needle: bytes | None,
        ids: set[bytes] = frozenset(),  # type: ignore[assignment]
    ) -> list[tuple[int, str, str, str, Any]]:
        """The outbox rows whose payload contains `needle` or one of `ids` (bytes: JSON and MessagePack
        both store strings as UTF-8), decoded: (seq, event id, type, content type, payload dict). Read in
        batches and filtered on the raw bytes first, so only candidate rows are decoded and kept; the ids
        are found with one pass of a regex and a set lookup, however many there are."""
        if needle is None and not ids:
            return []
        found = []
        last = 0
        while True:
            async with self.db.sessions() as session:
                batch = (
                    await session.execute(
                        select(
                            OutboxEvent.seq,
                            OutboxEvent.id,
                            OutboxEvent.type,
                            OutboxEvent.content_type,
                            OutboxEvent.payload,
                        )
                        .where(OutboxEvent.seq > last)
                        .order_by(OutboxEvent.seq)
                        .limit(SCAN_BATCH)
                    )
                ).all()
            if not batch:
                break
            for seq, event_id, type_name, content_type, payload in batch:
                hit = needle is not None and needle in payload
                if not hit and not (ids and ids.intersection(_ID.findall(payload))):
                    continue
                try:
                    data = codec.loads(content_type, payload)
                except ValueError:
                    continue
                if isinstance(data, dict):
                    found.append((seq, event_id, type_name, content_type, data))
            last = batch[-1][0]
        return found

    async def _about(
        self, user_id: str
    ) -> tuple[list[tuple[int, str, str, Any]], list[tuple[int, str, Any]]]:
        """The user's events (seq, id, type, payload), and events where the user is only the actor.

        Two reads of the outbox: the events naming the user (and, with them, the ids of the things they
        introduced as the user's own), then the events naming one of those things or the user as actor."""
        owned: set[str] = set()
        mine: dict[int, tuple[int, str, str, Any]] = {}
        for seq, event_id, type_name, _, data in await self._scan(user_id.encode()):
            if any(data.get(f) == user_id for f in SUBJECT_FIELDS):
                mine[seq] = (seq, event_id, type_name, data)
                # A share names the user as its grantee: the collection is the owner's, not the user's.
                if data.get("owner_id") in (None, user_id):
                    owned.update(str(data[f]) for f in OWNED_FIELDS if data.get(f))
        username = (await self.users.usernames([user_id])).get(user_id)
        needle = username.encode() if username else None
        acted = []
        for seq, event_id, type_name, content_type, data in await self._scan(
            needle, {o.encode() for o in owned}
        ):
            if seq in mine:
                continue
            if any(data.get(f) in owned for f in OWNED_FIELDS if data.get(f)):
                mine[seq] = (seq, event_id, type_name, data)
            elif username is not None and data.get("actor") == username:
                acted.append((seq, content_type, data))
        return sorted(mine.values()), acted

    async def _contexts(self, seqs: list[int]) -> dict[int, str]:
        found: dict[int, str] = {}
        async with self.db.sessions() as session:
            for chunk in in_chunks(seqs):
                rows = await session.execute(
                    select(OutboxEvent.seq, OutboxEvent.context).where(OutboxEvent.seq.in_(chunk))
                )
                found.update({seq: context for seq, context in rows.all()})
        return found

    async def export_user(self, user_id: str) -> Rows:
        mine, _ = await self._about(user_id)
        return {
            "events": [
                {"type": type_name, **orjson.loads(orjson.dumps(data, default=to_jsonable_python))}
                for _, _, type_name, data in mine
            ]
        }

    async def erase_user(self, user_id: str) -> None:
        mine, acted = await self._about(user_id)
        alias = pseudonym()
        if self.relay is not None and mine:
            contexts = await self._contexts([seq for seq, *_ in mine])
            by_context: dict[str, set[str]] = {}
            for seq, event_id, *_ in mine:
                by_context.setdefault(contexts[seq], set()).add(event_id)
            await self.relay.delete_events(by_context)
        async with self.db.transaction() as session:
            for chunk in in_chunks([seq for seq, *_ in mine]):
                await session.execute(delete(OutboxEvent).where(OutboxEvent.seq.in_(chunk)))
            for chunk in in_chunks([event_id for _, event_id, *_ in mine]):
                await session.execute(delete(ConsumedEvent).where(ConsumedEvent.event_id.in_(chunk)))
            for seq, content_type, data in acted:
                data["actor"] = alias
                await session.execute(
                    update(OutboxEvent)
                    .where(OutboxEvent.seq == seq)
                    .values(payload=_dump(content_type, data))
                )


def _dump(content_type: str, data: Any) -> bytes:
    if content_type == codec.MSGPACK:
        return msgpack.packb(data, use_bin_type=True)
    return orjson.dumps(data)
