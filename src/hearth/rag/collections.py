"""Collections and their sharing: create, list, read, delete, share read-only and withdraw a share.

Sharing and unsharing publish CollectionShared / CollectionUnshared in the transaction of the change."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from sqlalchemy import delete, func, select
from sqlalchemy.ext.asyncio import AsyncSession

from hearth.auth.ports import UserDirectory
from hearth.events.bus import EventBus
from hearth.platform.db import Database, new_id
from hearth.platform.errors import HearthError, bad_request, not_found
from hearth.platform.kit.repository import in_chunks
from hearth.rag import events
from hearth.rag.indexes import Indexes
from hearth.rag.models import Collection, CollectionShare, Document, IngestJob
from hearth.rag.repository import CollectionRepository
from hearth.rag.schemas import CollectionOut


class Collections:
    def __init__(
        self, *, db: Database, bus: EventBus, users: UserDirectory, indexes: Indexes, uploads: Path
    ) -> None:
        self.db = db
        self.bus = bus
        self.users = users
        self.indexes = indexes
        self.uploads = uploads

    async def create_collection(self, *, user_id: str, name: str, description: str = "") -> CollectionOut:
        """Create a collection owned by the user; names are unique per owner (409)."""
        async with self.db.transaction() as session:
            taken = await session.scalar(
                select(Collection.id).where(Collection.owner_id == user_id, Collection.name == name)
            )
            if taken:
                raise HearthError(
                    409, f"you already have a collection named {name!r}", code="collection_exists"
                )
            collection = Collection(id=new_id(), owner_id=user_id, name=name, description=description)
            session.add(collection)
            await session.flush()
            await self.bus.publish(
                events.CollectionCreated(collection_id=collection.id, owner_id=user_id, name=name),
                session=session,
            )
            return (await self._out(session, [collection], user_id))[0]

    async def list_collections(self, *, user_id: str) -> list[CollectionOut]:
        """Collections the user owns or that are shared with them."""
        async with self.db.transaction() as session:
            repo = CollectionRepository(session, user_id=user_id)
            rows = (await session.scalars(repo.select().order_by(Collection.name))).all()
            return await self._out(session, rows, user_id)

    async def get_collection(self, *, user_id: str, collection: str) -> CollectionOut:
        """One visible collection by id or name."""
        async with self.db.transaction() as session:
            found = await CollectionRepository(session, user_id=user_id).find(collection)
            return (await self._out(session, [found], user_id))[0]

    async def delete_collection(self, *, user_id: str, collection: str) -> None:
        """Delete an owned collection with its documents, jobs, vectors and keyword index."""
        async with self.db.transaction() as session:
            found = await CollectionRepository(session, user_id=user_id).find(collection, write=True)
            job_ids = (
                await session.scalars(select(IngestJob.id).where(IngestJob.collection_id == found.id))
            ).all()
            await session.execute(delete(Collection).where(Collection.id == found.id))
            await self.bus.publish(
                events.CollectionDeleted(collection_id=found.id, owner_id=user_id), session=session
            )
        await self.indexes.drop(found.id)
        for job_id in job_ids:
            (self.uploads / job_id).unlink(missing_ok=True)

    async def share(self, *, user_id: str, collection: str, username: str) -> CollectionOut:
        """Give another user read-only access."""
        async with self.db.transaction() as session:
            found = await CollectionRepository(session, user_id=user_id).find(collection, write=True)
            other = await self._user(username)
            if other == user_id:
                raise bad_request("you own this collection; share it with someone else", param="username")
            if await session.get(CollectionShare, (found.id, other)) is None:
                session.add(CollectionShare(collection_id=found.id, user_id=other))
                await session.flush()
                await self.bus.publish(
                    events.CollectionShared(collection_id=found.id, owner_id=user_id, user_id=other),
                    session=session,
                )
            return (await self._out(session, [found], user_id))[0]

    async def unshare(self, *, user_id: str, collection: str, username: str) -> CollectionOut:
        """Withdraw another user's read-only access."""
        async with self.db.transaction() as session:
            found = await CollectionRepository(session, user_id=user_id).find(collection, write=True)
            other = await self._user(username)
            removed = await session.execute(
                delete(CollectionShare).where(
                    CollectionShare.collection_id == found.id, CollectionShare.user_id == other
                )
            )
            if removed.rowcount:
                await self.bus.publish(
                    events.CollectionUnshared(collection_id=found.id, owner_id=user_id, user_id=other),
                    session=session,
                )
            return (await self._out(session, [found], user_id))[0]

    async def _user(self, username: str) -> str:
        user_id = await self.users.user_id_of(username)
        if user_id is None:
            raise not_found(f"user {username!r} not found", param="username")
        return user_id

    async def _out(
        self, session: AsyncSession, collections: Sequence[Collection], user_id: str
    ) -> list[CollectionOut]:
        """The collections as the user sees them: share lists (owner only) and document counts, set-wise."""
        ids = [c.id for c in collections]
        counts: dict[str, int] = {}
        shares: dict[str, list[str]] = {}
        owned = [c.id for c in collections if c.owner_id == user_id]
        for chunk in in_chunks(ids):
            counts.update(
                (
                    await session.execute(
                        select(Document.collection_id, func.count())
                        .where(Document.collection_id.in_(chunk))
                        .group_by(Document.collection_id)
                    )
                ).all()
            )
        for chunk in in_chunks(owned):
            for collection_id, shared_with in (
                await session.execute(
                    select(CollectionShare.collection_id, CollectionShare.user_id).where(
                        CollectionShare.collection_id.in_(chunk)
                    )
                )
            ).all():
                shares.setdefault(collection_id, []).append(shared_with)
        names = await self.users.usernames({u for us in shares.values() for u in us}) if shares else {}
        return [
            CollectionOut(
                id=c.id,
                name=c.name,
                description=c.description,
                owner_id=c.owner_id,
                owned=c.owner_id == user_id,
                shared_with=sorted(names[u] for u in shares.get(c.id, []) if u in names),
                document_count=counts.get(c.id, 0),
                created_at=c.created_at,
            )
            for c in collections
        ]
