"""End to end on the embedded SmolLM2 model: a conversation streamed, stored with real token counts and
titled (by the model, or by the fallback when its words are unusable)."""

from __future__ import annotations

import httpx
import orjson

from hearth.chat.titles import clean_title, fallback_title
from tests.harness import run_hearth

# Only the embedded LLM: start-up stays quick and the test does not depend on the other embedded models.
CONFIG = {
    "include_defaults": False,
    "backends": {"local-llm": {"type": "llama_cpp", "n_ctx": 2048}},
    "aliases": {"chat": {"kind": "chat", "deployments": [{"backend": "local-llm"}]}},
}


def test_conversation_on_the_embedded_model(tmp_path) -> None:  # type: ignore[no-untyped-def]
    with run_hearth(tmp_path, CONFIG, chat_max_tokens=12) as hearth:
        events = []
        with httpx.stream(
            "POST",
            f"{hearth.url}/api/conversations",
            json={"content": "What is the capital of France?", "temperature": 0},
            headers=hearth.headers(),
            timeout=120,
        ) as response:
            assert response.status_code == 201
            for line in response.iter_lines():
                if line.startswith("data: "):
                    events.append(orjson.loads(line[6:]))
        types = [e["type"] for e in events]
        deltas = types.count("delta")
        assert deltas >= 1 and types == ["start", *["delta"] * deltas, "message", "title", "done"], types
        text = "".join(e["content"] for e in events if e["type"] == "delta")
        detail = httpx.get(
            f"{hearth.url}/api/conversations/{events[0]['conversation_id']}", headers=hearth.headers()
        ).json()
        user, assistant = detail["messages"]
        assert assistant["content"] == text and text.strip()
        meta = assistant["metadata"]
        assert 0 < meta["completion_tokens"] <= 12 and meta["prompt_tokens"] > 5
        assert "tokens_estimated" not in meta and meta["deployment"] == "local-llm"
        title = events[types.index("title")]["title"]
        # The model's title when usable, else the fallback; either way tidy and short.
        assert detail["title"] == title and 0 < len(title) <= 60
        assert title == fallback_title(user["content"]) or clean_title(title) == title
