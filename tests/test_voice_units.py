"""Voice pieces without a server: which earlier turns of a streamed conversation the LLM reads."""

from __future__ import annotations

from hearth.voice.service import history_window


def conversation(turns: int) -> list[dict[str, str]]:
    out = []
    for i in range(turns):
        out += [{"role": "user", "content": f"q{i}"}, {"role": "assistant", "content": f"a{i}"}]
    return out


def test_history_window_keeps_its_start_so_the_llm_prompt_cache_holds() -> None:
    kept = [[m["content"] for m in history_window(conversation(n))] for n in range(10)]
    assert kept[0] == [] and kept[1] == ["q0", "a0"]
    assert kept[4] == ["q0", "a0", "q1", "a1", "q2", "a2", "q3", "a3"]  # at most 4 earlier turns
    assert kept[5] == ["q4", "a4"]  # then it starts again from the last one
    assert kept[8] == ["q4", "a4", "q5", "a5", "q6", "a6", "q7", "a7"]
    # Between two resets each turn's prompt extends the last one: only the new question is evaluated.
    for n in (1, 2, 3, 5, 6, 7):
        assert kept[n + 1][: len(kept[n])] == kept[n]
