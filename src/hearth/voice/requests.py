"""A user's stored voice requests: the owner-scoped repository and the reads the API serves."""

from __future__ import annotations

import asyncio

from hearth.platform.db import Database
from hearth.platform.errors import not_found
from hearth.platform.kit.repository import OwnedRepository
from hearth.voice.models import VoiceRequest
from hearth.voice.schemas import VoiceRequestOut
from hearth.voice.store import AudioStore


class VoiceRequestRepository(OwnedRepository[VoiceRequest]):
    """Every read of voice rows goes through here: a user only ever sees their own."""

    model = VoiceRequest
    noun = "voice request"
    param = "request_id"
    missing = "{noun} {id!r} not found"  # worded as the voice API always has

    async def newest(self, *, limit: int) -> list[VoiceRequest]:
        """The user's requests, newest first."""
        stmt = self.select().order_by(VoiceRequest.created_at.desc()).limit(limit)
        return list((await self.session.scalars(stmt)).unique())


class StoredRequests:
    def __init__(self, *, db: Database, store: AudioStore) -> None:
        self.db = db
        self.store = store

    async def list(self, *, user_id: str, limit: int = 50) -> list[VoiceRequestOut]:
        """The user's voice requests, newest first."""
        async with self.db.sessions() as s:
            rows = await VoiceRequestRepository(s, owner_id=user_id).newest(limit=limit)
            return [VoiceRequestOut.model_validate(r) for r in rows]

    async def get(self, *, user_id: str, request_id: str) -> VoiceRequestOut:
        """One of the user's requests with its response; 404 for a missing id or another user's."""
        return VoiceRequestOut.model_validate(await self._row(user_id=user_id, request_id=request_id))

    async def audio(self, *, user_id: str, request_id: str, which: str) -> tuple[bytes, str]:
        """(bytes, format) of the request's audio ('request') or the answer's ('response') while kept."""
        row = await self._row(user_id=user_id, request_id=request_id)
        if which == "request":
            path, fmt = row.audio_path, row.format
        else:
            path = row.response.audio_path if row.response else None
            fmt = row.response.audio_format if row.response else ""
        if path is None:
            raise not_found(
                "this audio is no longer kept (voice audio is deleted after its retention period)"
            )
        data = await asyncio.to_thread(self.store.read, path)
        if data is None:
            raise not_found("this audio is no longer kept")
        return data, fmt

    async def _row(self, *, user_id: str, request_id: str) -> VoiceRequest:
        async with self.db.sessions() as s:
            return await VoiceRequestRepository(s, owner_id=user_id).get_or_404(request_id)
