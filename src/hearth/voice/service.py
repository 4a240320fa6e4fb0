"""The voice context's service: run a turn, store what was said and answered, publish the event stream; a
user's own history (`requests.StoredRequests`) and retention (`retention.VoiceRetention`) sit behind it.

A turn is stored only once it has an outcome — answered, or interrupted by the client — in one transaction
with its events, so a failure leaves no half-stored request (its audio files are removed too)."""

from __future__ import annotations

import asyncio
import base64
import logging
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any

from hearth.chat.ports import PreferenceReader, SessionTracker
from hearth.chat.schemas import Preferences
from hearth.config import Settings
from hearth.events.bus import EventBus
from hearth.gateway.audio import DecodedAudio, decode_upload, encode_pcm
from hearth.gateway.service import Caller, Gateway
from hearth.platform.db import Database, new_id, utcnow
from hearth.platform.errors import HearthError
from hearth.platform.retention import RetentionRule
from hearth.rag.ports import Retriever
from hearth.voice import events as ev
from hearth.voice.models import VoiceRequest, VoiceResponse
from hearth.voice.pipeline import TurnOptions, TurnResult, run_turn
from hearth.voice.requests import StoredRequests
from hearth.voice.retention import VoiceRetention
from hearth.voice.schemas import VoiceRequestOut, VoiceResponseOut
from hearth.voice.store import AudioStore

log = logging.getLogger("hearth.voice")

INPUT_FORMATS = frozenset({"wav", "webm", "mp3"})  # seed 000's invariant
OUTPUT_FORMATS = ("wav", "mp3", "opus")
_HISTORY_TURNS = 4  # most earlier turns of a streamed conversation the LLM reads (see with_history)


@dataclass(frozen=True)
class TurnInput:
    """A request as the API received it; unset options fall back to the user's preferences."""

    audio: bytes
    declared_format: str | None = None
    enable_rag: bool | None = None
    collection: str | None = None
    model: str | None = None
    voice: str | None = None
    language: str | None = None
    audio_format: str = "wav"
    session_id: str | None = None
    streaming: bool = False


class VoiceService:
    def __init__(
        self,
        *,
        db: Database,
        bus: EventBus,
        gateway: Gateway,
        settings: Settings,
        retriever: Retriever | None,
        sessions: SessionTracker | None,
        preferences: PreferenceReader | None,
        clock: Callable[[], datetime] = utcnow,
    ) -> None:
        self.db = db
        self.bus = bus
        self.gateway = gateway
        self.settings = settings
        # Ports of the rag and chat contexts; None when that context is not loaded.
        self.retriever = retriever
        self.sessions = sessions
        self.preferences = preferences
        self.store = AudioStore(settings.data_dir / "voice")
        self.clock = clock
        self.requests = StoredRequests(db=db, store=self.store)
        self.retention = VoiceRetention(db=db, store=self.store, settings=settings)

    def warm_up(self) -> None:
        """Load the speech models of the voice aliases now, in the background."""
        for name in (self.settings.voice_stt_model, self.settings.voice_tts_model):
            self.gateway.warm_up(name)

    # -- retention and reads ----------------------------------------------------------------------------

    def retention_rules(self) -> list[RetentionRule]:
        """The voice context's retention rules (audio files, then the rows)."""
        return self.retention.rules()

    async def list_requests(self, *, user_id: str, limit: int = 50) -> list[VoiceRequestOut]:
        """The user's voice requests, newest first."""
        return await self.requests.list(user_id=user_id, limit=limit)

    async def get_request(self, *, user_id: str, request_id: str) -> VoiceRequestOut:
        """One of the user's requests with its response; 404 for a missing id or another user's."""
        return await self.requests.get(user_id=user_id, request_id=request_id)

    async def get_audio(self, *, user_id: str, request_id: str, which: str) -> tuple[bytes, str]:
        """(bytes, format) of the request's audio ('request') or the answer's ('response') while kept."""
        return await self.requests.audio(user_id=user_id, request_id=request_id, which=which)

    # -- turns ------------------------------------------------------------------------------------------

    async def open_session(self, *, user_id: str, session_id: str | None) -> str | None:
        """The chat context's voice session for this conversation: touched if given, opened otherwise."""
        if self.sessions is None:
            return session_id
        if session_id:
            await self.sessions.touch(user_id=user_id, session_id=session_id)
            return session_id
        return (await self.sessions.open(user_id=user_id, kind="voice")).id

    async def options(self, *, user_id: str, turn: TurnInput) -> TurnOptions:
        """What this turn runs with: the request's choices, else the user's preferences, else settings."""
        prefs = await self.preferences.get(user_id=user_id) if self.preferences else Preferences()
        enable_rag = prefs.rag_enabled if turn.enable_rag is None else turn.enable_rag
        collection = turn.collection or prefs.collection
        s = self.settings
        model = turn.model or prefs.model or s.voice_chat_model
        self.gateway.router.get(model, "chat")  # a clear 404/400 before any work
        return TurnOptions(
            stt_model=s.voice_stt_model,
            tts_model=s.voice_tts_model,
            chat_model=model,
            system_prompt=s.voice_system_prompt,
            max_reply_tokens=s.voice_max_reply_tokens,
            temperature=s.voice_temperature,
            voice=turn.voice or prefs.voice or "default",
            enable_rag=enable_rag,
            collection=collection,
            language=turn.language,
        )

    def decode(self, turn: TurnInput) -> DecodedAudio:
        """The upload decoded and checked: a real wav/webm/mp3 container within the duration cap."""
        audio = decode_upload(turn.audio, allowed=INPUT_FORMATS, max_seconds=self.settings.voice_max_seconds)
        if turn.declared_format and turn.declared_format != audio.format:
            raise HearthError(
                400,
                f"the request says the audio is {turn.declared_format}, but it is {audio.format}",
                param="format",
                code="format_mismatch",
            )
        return audio

    async def respond(self, *, caller: Caller, turn: TurnInput) -> VoiceResponseOut:
        """A whole turn (POST /api/voice): the reply's audio as one file, with per-stage latency."""
        audio = await asyncio.to_thread(self.decode, turn)
        options = await self.options(user_id=caller.user_id, turn=turn)
        session_id = await self.open_session(user_id=caller.user_id, session_id=turn.session_id)
        turn = replace(turn, session_id=session_id)
        result = TurnResult()
        async for _ in self.turn(caller=caller, turn=turn, audio=audio, options=options, result=result):
            pass
        return await self.finish(
            caller=caller, turn=turn, audio=audio, options=options, result=result, session_id=session_id
        )

    async def turn(
        self,
        *,
        caller: Caller,
        turn: TurnInput,
        audio: DecodedAudio,
        options: TurnOptions,
        result: TurnResult,
    ) -> AsyncIterator[dict[str, Any]]:
        """The turn's messages as they are ready; a failure is stored as a VoiceRequestFailed event."""
        result.events.append(
            ev.VoiceRequestReceived(
                request_id=caller.request_id,
                user_id=caller.user_id,
                format=audio.format,
                duration_ms=audio.duration_ms,
                enable_rag=options.enable_rag,
                streaming=turn.streaming,
                session_id=turn.session_id,
            )
        )
        try:
            async for message in run_turn(
                gateway=self.gateway,
                rag=self.retriever,
                audio=audio,
                upload=turn.audio,
                options=options,
                caller=caller,
                result=result,
            ):
                yield message
        except HearthError as exc:
            await self._failed(caller, result, exc.status, exc.message)
            raise
        except Exception as exc:
            await self._failed(caller, result, 500, f"{type(exc).__name__}: {exc}")
            raise

    async def _failed(self, caller: Caller, result: TurnResult, status: int, message: str) -> None:
        failed = ev.VoiceRequestFailed(
            request_id=caller.request_id, user_id=caller.user_id, status=status, error=message[:500]
        )
        async with self.db.transaction() as s:
            for event in (*result.events, failed):
                await self.bus.publish(event, session=s)

    async def finish(
        self,
        *,
        caller: Caller,
        turn: TurnInput,
        audio: DecodedAudio,
        options: TurnOptions,
        result: TurnResult,
        session_id: str | None,
    ) -> VoiceResponseOut:
        """Store the request, the answer, both audio files and the turn's events as one unit."""
        request_id = caller.request_id
        response_id = new_id()
        answer = encode_pcm(result.joined_pcm(), result.sample_rate, turn.audio_format) if result.pcm else b""
        stages = dict(result.stages_ms)
        total = stages.get("total", 0.0)
        written: list[str] = []
        try:
            written.append(
                await asyncio.to_thread(
                    self.store.write, caller.user_id, f"{request_id}-in.{audio.format}", turn.audio
                )
            )
            if answer:
                written.append(
                    await asyncio.to_thread(
                        self.store.write, caller.user_id, f"{request_id}-out.{turn.audio_format}", answer
                    )
                )
            result.events.append(
                ev.AudioResponseReady(
                    request_id=request_id,
                    user_id=caller.user_id,
                    response_id=response_id,
                    audio_format=turn.audio_format,
                    audio_ms=result.audio_ms,
                    latency_ms=total,
                    first_audio_ms=stages.get("first_audio"),
                    interrupted=result.interrupted,
                )
            )
            async with self.db.transaction() as s:
                request = VoiceRequest(
                    id=request_id,
                    user_id=caller.user_id,
                    session_id=session_id,
                    format=audio.format,
                    duration_ms=audio.duration_ms,
                    language=options.language,
                    enable_rag=options.enable_rag,
                    collection=options.collection,
                    streaming=turn.streaming,
                    transcription=result.transcription,
                    audio_path=written[0],
                    created_at=self.clock(),
                )
                s.add(request)
                s.add(
                    VoiceResponse(
                        id=response_id,
                        request_id=request_id,
                        response_text=result.response_text,
                        model=options.chat_model,
                        audio_format=turn.audio_format,
                        audio_ms=result.audio_ms,
                        audio_path=written[1] if answer else None,
                        latency_ms=total,
                        stages_ms=stages,
                        rag_docs_used=result.rag_docs_used,
                        interrupted=result.interrupted,
                        created_at=self.clock(),
                    )
                )
                await s.flush()
                for event in result.events:
                    await self.bus.publish(event, session=s)
        except BaseException:
            await asyncio.to_thread(self.store.remove, written)
            raise
        return VoiceResponseOut(
            id=response_id,
            request_id=request_id,
            session_id=session_id,
            transcription=result.transcription,
            response_text=result.response_text,
            audio_b64=base64.b64encode(answer).decode(),
            audio_format=turn.audio_format,
            audio_ms=result.audio_ms,
            latency_ms=total,
            latency=stages,
            rag_docs_used=result.rag_docs_used,
            model=options.chat_model,
            interrupted=result.interrupted,
        )

    def with_history(self, options: TurnOptions, history: list[dict[str, str]]) -> TurnOptions:
        """Options carrying the conversation so far (`history`: user/assistant pairs, oldest first)."""
        return replace(options, history=tuple(history_window(history)))


def history_window(history: list[dict[str, str]]) -> list[dict[str, str]]:
    """The earlier turns the LLM reads. The window moves in steps, not one turn at a time: llama.cpp
    reuses the prompt it evaluated last time up to the first token that differs, so while the window's start
    stays put a turn evaluates only its new question, not the whole history again (the embedded LLM reads
    ~90 prompt tokens/s; measured with a window sliding every turn: first token ~2 s from the fourth turn
    on). It holds 1 to `_HISTORY_TURNS` turns and, when full, starts again from the last one."""
    turns = len(history) // 2
    start = (turns - 1) // _HISTORY_TURNS * _HISTORY_TURNS if turns else 0
    return history[2 * start :]
