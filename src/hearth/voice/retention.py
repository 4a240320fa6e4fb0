"""Voice retention: audio files go after an hour (their paths are cleared), the rows after 30 days."""

from __future__ import annotations

import asyncio
from datetime import datetime, timedelta

from sqlalchemy import delete, select, update

from hearth.config import Settings
from hearth.platform.db import Database
from hearth.platform.retention import RetentionRule
from hearth.voice.models import VoiceRequest, VoiceResponse
from hearth.voice.store import AudioStore


class VoiceRetention:
    def __init__(self, *, db: Database, store: AudioStore, settings: Settings) -> None:
        self.db = db
        self.store = store
        self.settings = settings

    def rules(self) -> list[RetentionRule]:
        """Audio files after `voice_audio_retention_hours`, the rows after `voice_text_retention_days`."""
        return [
            RetentionRule(
                "voice.audio", timedelta(hours=self.settings.voice_audio_retention_hours), self.sweep_audio
            ),
            RetentionRule(
                "voice.text", timedelta(days=self.settings.voice_text_retention_days), self.sweep_text
            ),
        ]

    async def sweep_audio(self, cutoff: datetime) -> int:
        """Delete audio files older than `cutoff` and forget their paths; returns how many files went."""
        async with self.db.transaction() as s:
            reqs = (
                await s.execute(
                    select(VoiceRequest.id, VoiceRequest.audio_path).where(
                        VoiceRequest.created_at < cutoff, VoiceRequest.audio_path.is_not(None)
                    )
                )
            ).all()
            resps = (
                await s.execute(
                    select(VoiceResponse.id, VoiceResponse.audio_path).where(
                        VoiceResponse.created_at < cutoff, VoiceResponse.audio_path.is_not(None)
                    )
                )
            ).all()
            if reqs:
                await s.execute(
                    update(VoiceRequest)
                    .where(VoiceRequest.id.in_([r.id for r in reqs]))
                    .values(audio_path=None)
                )
            if resps:
                await s.execute(
                    update(VoiceResponse)
                    .where(VoiceResponse.id.in_([r.id for r in resps]))
                    .values(audio_path=None)
                )
            kept = set(
                await s.scalars(select(VoiceRequest.audio_path).where(VoiceRequest.audio_path.is_not(None)))
            )
            kept |= set(
                await s.scalars(select(VoiceResponse.audio_path).where(VoiceResponse.audio_path.is_not(None)))
            )
        paths = [r.audio_path for r in (*reqs, *resps)]
        removed = await asyncio.to_thread(self.store.remove, paths)
        # Files no row points to (a crash between writing and committing) go by their own age.
        removed += await asyncio.to_thread(self.store.remove_orphans, cutoff, kept)
        return removed

    async def sweep_text(self, cutoff: datetime) -> int:
        """Delete requests (and their responses) older than `cutoff`; returns how many requests went."""
        async with self.db.transaction() as s:
            rows = (
                await s.execute(
                    select(VoiceRequest.id, VoiceRequest.audio_path).where(VoiceRequest.created_at < cutoff)
                )
            ).all()
            if not rows:
                return 0
            ids = [r.id for r in rows]
            files = [r.audio_path for r in rows]
            files += list(
                await s.scalars(
                    select(VoiceResponse.audio_path).where(
                        VoiceResponse.request_id.in_(ids), VoiceResponse.audio_path.is_not(None)
                    )
                )
            )
            await s.execute(delete(VoiceResponse).where(VoiceResponse.request_id.in_(ids)))
            await s.execute(delete(VoiceRequest).where(VoiceRequest.id.in_(ids)))
        await asyncio.to_thread(self.store.remove, files)
        return len(ids)
