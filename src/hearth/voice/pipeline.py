"""One spoken turn: transcribe → (RAG) → stream the LLM's reply → speak it sentence by sentence.

`run_turn` yields messages as soon as each is ready: the transcript, then text deltas interleaved with one
audio clip per sentence, then the outcome. The LLM and the synthesizer run as two tasks joined by a queue of
sentences, so the first sentence is being spoken while the rest is still being generated. Closing the
generator early (barge-in, a client gone) cancels both; closing the LLM stream frees its slot at once.
"""

from __future__ import annotations

import asyncio
import contextlib
import re
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

from hearth.gateway.audio import DecodedAudio, wav_to_pcm
from hearth.gateway.backends.base import SpeechRequest, TranscriptionRequest
from hearth.gateway.sentences import SentenceBuffer, speakable
from hearth.gateway.service import Caller, Gateway
from hearth.platform.errors import HearthError
from hearth.rag.ports import Retriever
from hearth.voice import events as ev

NO_SPEECH = "no speech detected"
_MARKUP = re.compile(r"[*_#`~>|]+")  # markdown the LLM may write; a voice should not read it out
_GAP_S = 0.12  # silence between two sentences' clips when they are joined into one file


@dataclass(frozen=True)
class TurnOptions:
    stt_model: str
    tts_model: str
    chat_model: str
    system_prompt: str
    max_reply_tokens: int
    temperature: float = 0.3
    voice: str = "default"
    enable_rag: bool = False
    collection: str | None = None
    language: str | None = None
    history: tuple[dict[str, str], ...] = ()  # earlier turns of this conversation, oldest first


@dataclass
class TurnResult:
    transcription: str = ""
    response_text: str = ""
    sentences: list[str] = field(default_factory=list)
    pcm: list[bytes] = field(default_factory=list)  # one clip per sentence
    sample_rate: int = 22_050
    rag_docs_used: int = 0
    interrupted: bool = False
    stages_ms: dict[str, float] = field(default_factory=dict)
    events: list[ev.Event] = field(default_factory=list)  # written to the outbox with the rows

    def joined_pcm(self) -> bytes:
        gap = bytes(int(self.sample_rate * _GAP_S) * 2)
        return gap.join(self.pcm)

    @property
    def audio_ms(self) -> int:
        gaps = int(self.sample_rate * _GAP_S) * max(0, len(self.pcm) - 1)
        samples = sum(len(p) for p in self.pcm) // 2 + gaps
        return round(samples * 1000 / self.sample_rate)


def _ms(since: float) -> float:
    return round((time.perf_counter() - since) * 1000, 1)


async def run_turn(
    *,
    gateway: Gateway,
    rag: Retriever | None,
    audio: DecodedAudio,
    upload: bytes,
    options: TurnOptions,
    caller: Caller,
    result: TurnResult,
) -> AsyncIterator[dict[str, Any]]:
    """Messages of one turn, in order; `result` is filled in as it goes (kept even when interrupted)."""
    started = time.perf_counter()
    ids = {"request_id": caller.request_id, "user_id": caller.user_id}
    stages = result.stages_ms

    result.events.append(ev.TranscriptionStarted(**ids, model=options.stt_model))
    t = time.perf_counter()
    transcription = await gateway.transcribe(
        options.stt_model,
        TranscriptionRequest(
            file=upload, filename=f"speech.{audio.format}", samples=audio.samples, language=options.language
        ),
        caller,
    )
    stages["transcription"] = _ms(t)
    text = transcription.text.strip()
    if not text:
        raise HearthError(422, NO_SPEECH, param="audio", code="no_speech_detected")
    result.transcription = text
    result.events.append(ev.TranscriptionCompleted(**ids, text=text, latency_ms=stages["transcription"]))
    yield {"type": "transcript", "text": text}

    messages = await _messages(rag, options, text, caller, result)

    result.events.append(ev.LLMInferenceStarted(**ids, model=options.chat_model))
    sentences: asyncio.Queue[str | None] = asyncio.Queue()
    out: asyncio.Queue[dict[str, Any] | BaseException | None] = asyncio.Queue()
    body = {
        "model": options.chat_model,
        "messages": messages,
        "stream": True,
        "max_tokens": options.max_reply_tokens,
        "temperature": options.temperature,
    }

    async def generate() -> None:
        t_llm = time.perf_counter()
        # The first piece may end at a comma once it is long enough: the first audio comes sooner.
        buffer = SentenceBuffer(first_clause_words=6)
        try:
            stream = await gateway.chat_stream(body, caller)
            try:
                async for chunk in stream:
                    if "error" in chunk:
                        raise HearthError(502, f"the reply broke off: {chunk['error'].get('message')}")
                    delta = (chunk.get("choices") or [{}])[0].get("delta", {}).get("content") or ""
                    if not delta:
                        continue
                    if "llm_first_token" not in stages:
                        stages["llm_first_token"] = _ms(t_llm)
                    result.response_text += delta
                    await out.put({"type": "delta", "text": delta})
                    for sentence in buffer.feed(delta):
                        stages.setdefault("llm_first_sentence", _ms(t_llm))
                        sentences.put_nowait(sentence)
            finally:
                await stream.aclose()  # frees the LLM slot now, also when this task is cancelled
            for sentence in buffer.flush():
                stages.setdefault("llm_first_sentence", _ms(t_llm))
                sentences.put_nowait(sentence)
            stages["llm"] = _ms(t_llm)
        except BaseException as exc:
            await out.put(exc)
            raise
        finally:
            sentences.put_nowait(None)

    async def speak() -> None:
        tts_ms = 0.0
        try:
            while (sentence := await sentences.get()) is not None:
                if not result.pcm:
                    result.events.append(
                        ev.TTSSynthesisStarted(**ids, model=options.tts_model, voice=options.voice)
                    )
                spoken = _MARKUP.sub("", sentence)
                if not speakable(spoken):
                    continue
                t_tts = time.perf_counter()
                stream = await gateway.speech(
                    options.tts_model,
                    SpeechRequest(input=spoken, voice=options.voice, response_format="wav"),
                    caller,
                )
                pcm, rate = await asyncio.to_thread(wav_to_pcm, await stream.read())
                tts_ms += _ms(t_tts)
                if not result.pcm:
                    stages["first_tts"] = _ms(t_tts)
                    stages["first_audio"] = _ms(started)
                result.pcm.append(pcm)
                result.sentences.append(sentence)
                result.sample_rate = rate
                await out.put(
                    {
                        "type": "audio",
                        "index": len(result.pcm) - 1,
                        "text": sentence,
                        "pcm": pcm,
                        "rate": rate,
                    }
                )
            stages["tts"] = round(tts_ms, 1)
            await out.put(None)
        except BaseException as exc:
            await out.put(exc)
            raise

    tasks = [
        asyncio.create_task(generate(), name="voice-llm"),
        asyncio.create_task(speak(), name="voice-tts"),
    ]
    try:
        while (item := await out.get()) is not None:
            if isinstance(item, BaseException):
                raise item
            yield item
        if not result.pcm:
            raise HearthError(502, "the model's reply had nothing to speak", code="empty_reply")
    finally:
        # Also for an interrupted turn: what was generated so far, marked as such.
        stages.setdefault("total", _ms(started))
        result.events.append(
            ev.LLMResponseGenerated(
                **ids,
                model=options.chat_model,
                text=result.response_text,
                latency_ms=stages.get("llm", stages["total"]),
                interrupted="llm" not in stages,
            )
        )
        for task in tasks:
            task.cancel()
        with contextlib.suppress(BaseException):
            await asyncio.gather(*tasks, return_exceptions=True)


async def _messages(
    rag: Retriever | None, options: TurnOptions, text: str, caller: Caller, result: TurnResult
) -> list[dict[str, str]]:
    system = {"role": "system", "content": options.system_prompt}
    if not options.enable_rag:
        return [system, *options.history, {"role": "user", "content": text}]
    if rag is None:
        raise HearthError(503, "RAG is not available on this server", code="rag_unavailable")
    if not options.collection:
        raise HearthError(400, "enable_rag needs a collection", param="collection", code="missing_collection")
    t = time.perf_counter()
    sources = await rag.retrieve(user_id=caller.user_id, collection=options.collection, query=text)
    answer = rag.answer_messages(question=text, sources=sources)
    result.stages_ms["rag"] = _ms(t)
    result.rag_docs_used = len(sources)
    result.events.append(
        ev.VoiceRAGQueryExecuted(
            request_id=caller.request_id,
            user_id=caller.user_id,
            collection=options.collection,
            docs_used=result.rag_docs_used,
            latency_ms=result.stages_ms["rag"],
        )
    )
    # RAG's messages carry its instructions, the sources and the question; the voice instruction joins its
    # system message (one system message: small chat templates handle only one) to keep answers speakable.
    rag_system = [m["content"] for m in answer if m.get("role") == "system"]
    rest = [m for m in answer if m.get("role") != "system"]
    merged = {"role": "system", "content": "\n\n".join([options.system_prompt, *rag_system])}
    return [merged, *options.history, *rest]
