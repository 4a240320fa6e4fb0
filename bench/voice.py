"""Voice latency: end of speech → first audio byte, over the WebSocket of a real Hearth on the embedded
models (Whisper tiny.en, SmolLM2 on llama.cpp with 1 thread, piper).

Each run sends a spoken question (synthesized once beforehand by the server's own /v1/audio/speech) as
audio chunks, then `end`, and times from `end` to the first audio message; the server's per-stage
timings of the same turn give each stage's share. Target: p50 <= 1.5 s on a 2-core CPU.

    OMP_WAIT_POLICY=PASSIVE .venv/bin/python bench/voice.py [--runs 12] [--conversation]

By default each run is a new connection (a single question); --conversation keeps one connection, so the
prompt grows with the history of earlier turns.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import re
import statistics
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import orjson
from websockets.sync.client import connect

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

from tests.harness import run_hearth

QUESTIONS = [
    "What is the capital of France?",
    "How far away is the moon?",
    "Give me a tip for sleeping better.",
    "What should I cook for dinner tonight?",
    "Why is the sky blue?",
    "How do I make a cup of tea?",
]


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    k = (len(ordered) - 1) * q
    lo, hi = int(k), min(int(k) + 1, len(ordered) - 1)
    return ordered[lo] + (ordered[hi] - ordered[lo]) * (k - lo)


def turn(ws, audio: bytes) -> dict[str, Any]:  # type: ignore[no-untyped-def]
    """One turn: seconds from `end` to the transcript and to the first audio, the server's stages, the
    transcript and the first audio clip's text."""
    for i in range(0, len(audio), 8192):
        ws.send(audio[i : i + 8192])
    ws.send(orjson.dumps({"type": "end"}).decode())
    ended = time.perf_counter()
    out: dict[str, Any] = {"transcript_s": 0.0, "first_audio_s": None, "transcript": "", "first_text": ""}
    while True:
        m = orjson.loads(ws.recv(timeout=120))
        now = time.perf_counter() - ended
        if m["type"] == "transcript" and not out["transcript"]:
            out |= {"transcript_s": now, "transcript": m["text"]}
        elif m["type"] == "audio" and out["first_audio_s"] is None:
            out |= {"first_audio_s": now, "first_text": m["text"]}
        elif m["type"] == "done":
            return out | {"first_audio_s": out["first_audio_s"] or now, "stages": m["response"]["latency"]}
        elif m["type"] == "error":
            raise RuntimeError(m)


def words(text: str) -> list[str]:
    return re.findall(r"[a-z]+", text.lower())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=12)
    parser.add_argument(
        "--conversation",
        action="store_true",
        help="all runs in one WebSocket conversation (earlier turns become the LLM's context)",
    )
    args = parser.parse_args()
    load_before = os.getloadavg()
    with tempfile.TemporaryDirectory() as tmp, run_hearth(Path(tmp), voice_max_reply_tokens=60) as hearth:
        clips = []
        for q in QUESTIONS:
            r = httpx.post(
                f"{hearth.v1}/audio/speech",
                headers=hearth.headers(),
                json={"model": "tts", "input": q, "voice": "default", "response_format": "wav"},
                timeout=60,
            )
            r.raise_for_status()
            clips.append(r.content)
        url = hearth.url.replace("http://", "ws://") + "/api/voice/stream"

        @contextlib.contextmanager
        def session() -> Iterator[Any]:
            with connect(url, additional_headers=hearth.headers(), max_size=None) as ws:
                assert orjson.loads(ws.recv(timeout=30))["type"] == "ready"
                yield ws

        with session() as ws:
            # Warm-up (first use of each model) on the last question: run 1 asks another, so it does not
            # find its whole prompt already in llama.cpp's cache.
            turn(ws, clips[-1])
        firsts, transcripts, stages = [], [], []
        heard = 0  # transcripts with exactly the question's words
        with contextlib.ExitStack() as conversation:
            shared = conversation.enter_context(session()) if args.conversation else None
            for i in range(args.runs):
                with contextlib.ExitStack() as run:
                    # A new connection per run is a new question; --conversation keeps the history.
                    ws = shared or run.enter_context(session())
                    t = turn(ws, clips[i % len(clips)])
                transcripts.append(t["transcript_s"])
                firsts.append(t["first_audio_s"])
                stages.append(t["stages"])
                right = words(t["transcript"]) == words(QUESTIONS[i % len(QUESTIONS)])
                heard += right
                first_ms = t["first_audio_s"] * 1000
                print(f"run {i + 1:2d}: first audio {first_ms:6.0f} ms  stages {t['stages']}")
                mark = "heard" if right else "MISHEARD"
                print(f"        {mark} {t['transcript']!r}; first clip {t['first_text']!r}", flush=True)
    load_after = os.getloadavg()

    def ms(values: list[float]) -> str:
        return f"p50 {percentile(values, 0.5) * 1000:.0f} ms, p95 {percentile(values, 0.95) * 1000:.0f} ms"

    print(f"\nend of speech -> first audio byte: {ms(firsts)} over {args.runs} runs (target p50 <= 1500 ms)")
    print(f"end of speech -> transcript:       {ms(transcripts)}; {heard}/{args.runs} heard word for word")
    # Per run: the server's time to the first audio, cut into the stages on its path; medians over runs.
    parts: dict[str, list[float]] = {
        "transcription (whisper)": [],
        "rag": [],
        "llm to first sentence (smollm2)": [],
        "tts of first sentence (piper)": [],
        "queues, prompt set-up, decoding": [],
    }
    for s in stages:
        path = [
            s["transcription"],
            s.get("rag", 0.0),
            s.get("llm_first_sentence", s.get("llm", 0.0)),
            s["first_tts"],
        ]
        path.append(s["first_audio"] - sum(path))
        for values, value in zip(parts.values(), path, strict=True):
            values.append(value)
    server_first = statistics.median(s["first_audio"] for s in stages)
    print(
        f"server-side first audio p50 {server_first:.0f} ms; its stages (median over runs, share of the sum):"
    )
    medians = {name: statistics.median(values) for name, values in parts.items()}
    whole = sum(medians.values())
    for name, med in medians.items():
        if name == "rag" and med == 0:
            continue
        print(f"  {name:34s} {med:6.0f} ms  {med / whole:5.1%}")
    print(f"  (llm first token p50 {statistics.median(s['llm_first_token'] for s in stages):.0f} ms)")
    print(
        f"load average before {load_before[0]:.2f}, after {load_after[0]:.2f} (1 min), {os.cpu_count()} cores"
    )


if __name__ == "__main__":
    main()
