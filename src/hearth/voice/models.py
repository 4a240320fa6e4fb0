"""The voice context's tables: a request (what was said) and its response (what Hearth said back).

Audio lives in files under the data dir (`audio_path`, relative to it); retention removes the files after
an hour and clears the paths, and removes the rows themselves after 30 days."""

from __future__ import annotations

from typing import Any

from sqlalchemy import JSON, Boolean, Float, ForeignKey, Index, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column, relationship

from hearth.platform.db import Base, TimestampMixin, new_id


class VoiceRequest(TimestampMixin, Base):
    __tablename__ = "voice_requests"
    __table_args__ = (Index("ix_voice_requests_created_at", "created_at"),)

    id: Mapped[str] = mapped_column(String(32), primary_key=True, default=new_id)
    user_id: Mapped[str] = mapped_column(
        ForeignKey("users.id", ondelete="CASCADE"), index=True, nullable=False
    )
    session_id: Mapped[str | None] = mapped_column(String(64), nullable=True)
    format: Mapped[str] = mapped_column(String(8), nullable=False)  # wav | webm | mp3
    duration_ms: Mapped[int] = mapped_column(Integer, nullable=False)
    language: Mapped[str | None] = mapped_column(String(16), nullable=True)
    enable_rag: Mapped[bool] = mapped_column(Boolean, nullable=False, default=False)
    collection: Mapped[str | None] = mapped_column(String(128), nullable=True)
    streaming: Mapped[bool] = mapped_column(Boolean, nullable=False, default=False)
    transcription: Mapped[str] = mapped_column(Text, nullable=False)
    audio_path: Mapped[str | None] = mapped_column(String(256), nullable=True)

    response: Mapped[VoiceResponse] = relationship(
        back_populates="request", uselist=False, cascade="all, delete-orphan", lazy="joined"
    )

    @property
    def audio_kept(self) -> bool:
        """Whether the audio is still stored (retention clears `audio_path`)."""
        return self.audio_path is not None


class VoiceResponse(TimestampMixin, Base):
    __tablename__ = "voice_responses"

    id: Mapped[str] = mapped_column(String(32), primary_key=True, default=new_id)
    request_id: Mapped[str] = mapped_column(
        ForeignKey("voice_requests.id", ondelete="CASCADE"), unique=True, nullable=False
    )
    response_text: Mapped[str] = mapped_column(Text, nullable=False)
    model: Mapped[str] = mapped_column(String(128), nullable=False)
    audio_format: Mapped[str] = mapped_column(String(8), nullable=False)
    audio_ms: Mapped[int] = mapped_column(Integer, nullable=False)
    audio_path: Mapped[str | None] = mapped_column(String(256), nullable=True)
    latency_ms: Mapped[float] = mapped_column(Float, nullable=False)
    stages_ms: Mapped[dict[str, Any]] = mapped_column(JSON, nullable=False)
    rag_docs_used: Mapped[int] = mapped_column(Integer, nullable=False, default=0)
    interrupted: Mapped[bool] = mapped_column(Boolean, nullable=False, default=False)

    request: Mapped[VoiceRequest] = relationship(back_populates="response")

    @property
    def audio_kept(self) -> bool:
        """Whether the answer's audio is still stored (retention clears `audio_path`)."""
        return self.audio_path is not None

    @property
    def latency(self) -> dict[str, Any]:
        """Each stage's latency in milliseconds, under the API's name for it."""
        return self.stages_ms
