"""The voice part of a user's personal data: each turn (what was said, its transcription, the answer) and
the audio files still kept (retention removes them after an hour). Audio lives under
`<data_dir>/voice/<user_id>/`, so erasure removes that folder whole, files no row points to included."""

from __future__ import annotations

import shutil
from pathlib import Path

from sqlalchemy import delete, select

from hearth.platform.db import Database
from hearth.platform.personal_data import Rows, row_dict
from hearth.voice.models import VoiceRequest, VoiceResponse
from hearth.voice.store import AudioStore


class VoicePersonalData:
    context = "voice"

    def __init__(self, db: Database, store: AudioStore) -> None:
        self.db = db
        self.store = store

    async def export_user(self, user_id: str) -> Rows:
        async with self.db.sessions() as s:
            requests = (
                (
                    await s.scalars(
                        select(VoiceRequest)
                        .where(VoiceRequest.user_id == user_id)
                        .order_by(VoiceRequest.created_at)
                    )
                )
                .unique()
                .all()
            )
            return {
                "requests": [row_dict(r) for r in requests],
                "responses": [row_dict(r.response) for r in requests if r.response is not None],
            }

    async def user_files(self, user_id: str) -> list[tuple[str, Path]]:
        folder = self.store.root / user_id
        if not folder.is_dir():
            return []
        return [(f"audio/{p.name}", p) for p in sorted(folder.iterdir()) if p.is_file()]

    async def erase_user(self, user_id: str) -> None:
        async with self.db.transaction() as s:
            ids = select(VoiceRequest.id).where(VoiceRequest.user_id == user_id)
            await s.execute(delete(VoiceResponse).where(VoiceResponse.request_id.in_(ids)))
            await s.execute(delete(VoiceRequest).where(VoiceRequest.user_id == user_id))
        folder = self.store.root / user_id
        if folder.resolve().is_relative_to(self.store.root.resolve()) and folder.is_dir():
            shutil.rmtree(folder)
