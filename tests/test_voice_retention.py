"""Voice storage and retention on SQLite and PostgreSQL: a turn is stored as one unit (rows, audio files,
events); audio goes after an hour, text after 30 days, by an injectable clock; nothing younger is touched;
another user's requests are invisible."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import numpy as np
import pytest
from sqlalchemy import func, select

from hearth.auth.service import AuthService
from hearth.config import Settings
from hearth.events.bus import EventBus
from hearth.events.models import OutboxEvent
from hearth.gateway.audio import DecodedAudio, pcm_to_wav
from hearth.gateway.service import Caller
from hearth.platform.db import Database, new_id, utcnow
from hearth.platform.errors import HearthError
from hearth.platform.retention import RetentionSweeper
from hearth.voice.models import VoiceRequest
from hearth.voice.pipeline import TurnOptions, TurnResult
from hearth.voice.service import TurnInput, VoiceService

RATE = 22_050


class Clock:
    def __init__(self) -> None:
        self.now = utcnow()

    def __call__(self):  # type: ignore[no-untyped-def]
        return self.now


@pytest.fixture
async def setup(database: Database, tmp_path: Path):  # type: ignore[no-untyped-def]
    clock = Clock()
    settings = Settings(data_dir=tmp_path, retention_sweep_seconds=0)
    bus = EventBus(database)
    voice = VoiceService(
        db=database,
        bus=bus,
        gateway=None,
        settings=settings,
        retriever=None,
        sessions=None,
        preferences=None,
        clock=clock,
    )  # type: ignore[arg-type]
    auth = AuthService(database)
    alice = await auth.create_user(username="alice")
    bob = await auth.create_user(username="bob")
    sweeper = RetentionSweeper(clock=clock, interval_seconds=0)
    for rule in voice.retention_rules():
        sweeper.register(rule)
    yield voice, sweeper, clock, alice.id, bob.id
    await auth.drain()


async def store_turn(voice: VoiceService, user_id: str, text: str) -> str:
    """Stores a finished turn the way the pipeline does (real PCM, real files, real events)."""
    tone = (np.sin(np.arange(RATE // 2) * 2 * np.pi * 220 / RATE) * 8000).astype("<i2").tobytes()
    upload = pcm_to_wav(tone, RATE)
    caller = Caller(user_id=user_id, request_id=new_id())
    result = TurnResult(transcription=text, response_text="An answer.", sentences=["An answer."], pcm=[tone])
    result.sample_rate = RATE
    result.stages_ms.update({"transcription": 10.0, "llm": 20.0, "tts": 5.0, "total": 40.0})
    audio = DecodedAudio("wav", np.zeros(8000, np.float32), 0.5)
    options = TurnOptions(
        stt_model="stt", tts_model="tts", chat_model="chat", system_prompt="", max_reply_tokens=10
    )
    out = await voice.finish(
        caller=caller,
        turn=TurnInput(audio=upload),
        audio=audio,
        options=options,
        result=result,
        session_id=None,
    )
    assert out.request_id == caller.request_id and out.audio_ms == 500
    return out.request_id


def files(root: Path) -> set[str]:
    return {p.name for p in (root / "voice").glob("*/*")}


async def test_turn_is_stored_with_files_and_events(setup, database: Database, tmp_path: Path) -> None:
    voice, _, _, alice, bob = setup
    request_id = await store_turn(voice, alice, "hello there")
    assert files(tmp_path) == {f"{request_id}-in.wav", f"{request_id}-out.wav"}
    got = await voice.get_request(user_id=alice, request_id=request_id)
    assert got.transcription == "hello there" and got.response and got.response.response_text == "An answer."
    data, fmt = await voice.get_audio(user_id=alice, request_id=request_id, which="response")
    assert fmt == "wav" and data[:4] == b"RIFF"
    # Another user's id is a 404, never their data.
    with pytest.raises(HearthError) as err:
        await voice.get_request(user_id=bob, request_id=request_id)
    assert err.value.status == 404
    assert await voice.list_requests(user_id=bob) == []
    async with database.sessions() as s:
        types = list(await s.scalars(select(OutboxEvent.type).where(OutboxEvent.context == "voice")))
    assert types == ["AudioResponseReady"]  # the pipeline's earlier events ride in result.events


async def test_audio_after_an_hour_text_after_30_days_nothing_younger(setup, database, tmp_path) -> None:
    voice, sweeper, clock, alice, _ = setup
    old = await store_turn(voice, alice, "old turn")
    clock.now += timedelta(minutes=50)
    young = await store_turn(voice, alice, "young turn")

    clock.now += timedelta(minutes=20)  # old is 70 minutes old, young 20
    assert await sweeper.run_once() == {"voice.audio": 2, "voice.text": 0}
    assert files(tmp_path) == {f"{young}-in.wav", f"{young}-out.wav"}
    old_row = await voice.get_request(user_id=alice, request_id=old)
    assert old_row.transcription == "old turn" and not old_row.audio_kept
    assert old_row.response and not old_row.response.audio_kept
    with pytest.raises(HearthError) as err:
        await voice.get_audio(user_id=alice, request_id=old, which="request")
    assert err.value.status == 404
    assert (await voice.get_request(user_id=alice, request_id=young)).audio_kept

    clock.now += timedelta(days=30) - timedelta(minutes=30)  # old: 30 days and 40 min; young: 29d 23h 50m
    assert await sweeper.run_once() == {"voice.audio": 2, "voice.text": 1}
    assert [r.id for r in await voice.list_requests(user_id=alice)] == [young]
    clock.now += timedelta(minutes=15)
    assert (await sweeper.run_once())["voice.text"] == 1
    async with database.sessions() as s:
        assert await s.scalar(select(func.count()).select_from(VoiceRequest)) == 0


async def test_orphan_files_go_only_when_old_and_unreferenced(setup, tmp_path: Path) -> None:
    voice, sweeper, clock, alice, _ = setup
    kept = await store_turn(voice, alice, "kept")
    orphan = voice.store.write(alice, "crashed-in.wav", b"RIFF....")
    assert orphan.endswith("crashed-in.wav")
    clock.now += timedelta(minutes=30)
    assert (await sweeper.run_once())["voice.audio"] == 0  # the orphan is only 30 minutes old
    clock.now += timedelta(minutes=31)
    # The stored turn's rows are 61 minutes old too: both its files and the orphan go.
    assert (await sweeper.run_once())["voice.audio"] == 3
    assert files(tmp_path) == set()
    assert (await voice.get_request(user_id=alice, request_id=kept)).transcription == "kept"
