"""Replies carry the alias the client asked for as `model` (issue 20, row 9), as OpenAI-compatible proxies
do: the upstream's own model name stays behind the gateway, streamed or not."""

from __future__ import annotations

import httpx
import orjson

from tests.fake_openai import FakeOpenAI
from tests.harness import remote_config, run_hearth


def test_streamed_chunks_and_replies_name_the_alias_not_the_upstream_model(tmp_path):
    upstream = FakeOpenAI(model="upstream-internal-name").start()
    try:
        with run_hearth(tmp_path, remote_config((upstream.url, {}), alias="support-bot")) as hearth:
            body = {"model": "support-bot", "messages": [{"role": "user", "content": "hi"}]}
            chunks = []
            with httpx.stream(
                "POST",
                f"{hearth.v1}/chat/completions",
                json={**body, "stream": True},
                headers=hearth.headers(),
            ) as r:
                assert r.status_code == 200
                for line in r.iter_lines():
                    if line.startswith("data: {"):
                        chunks.append(orjson.loads(line[6:]))
            assert len(chunks) >= 3 and {c["model"] for c in chunks} == {"support-bot"}
            assert "".join(c["choices"][0]["delta"].get("content") or "" for c in chunks if c["choices"])
            whole = httpx.post(f"{hearth.v1}/chat/completions", json=body, headers=hearth.headers()).json()
            assert whole["model"] == "support-bot"
            # The upstream was asked for its own model name.
            assert {b["model"] for b in upstream.stats.bodies} == {"m0"}
    finally:
        upstream.stop()
