"""bench/agents.py's zero-latency model: tests/fake_openai.py answering each agent prompt at once with a
scripted good answer (so router runs take the RAG route and pass the judge), in a process of its own as a
real model server is, so its Python does not compete with the graphs' for this process's GIL.

    python -m bench.agents_upstream PORT
"""

from __future__ import annotations

import sys
import threading
from typing import Any

from tests.agents_helpers import Script
from tests.fake_openai import FakeOpenAI

ANSWERS = {
    "classify": "factual",
    "answer": "The flow separates near the leading edge [1].",
    "judge": '{"score": 90}',
    "plan": "[]",
    "write": "A cited answer [1].",
    "review": '{"verdict": "approve", "score": 90}',
}


class _Discard(list):  # type: ignore[type-arg]
    """The script's call log, kept empty: a benchmark has no use for it."""

    def append(self, item: Any) -> None:
        return None


if __name__ == "__main__":
    script = Script(answers=dict(ANSWERS))
    script.calls = _Discard()  # type: ignore[assignment]
    upstream = FakeOpenAI()
    upstream.keep_bodies = False
    upstream.behaviour.script = script
    upstream.start(int(sys.argv[1]))
    threading.Event().wait()
