"""The agents' deterministic pieces: the classifier floor, the label and score parsers, the fallback
judge's signals, the calculator, and the `mcp_servers` section of hearth.yaml."""

from __future__ import annotations

from pathlib import Path

import pytest

from hearth.agents import calculator, classify, judge
from hearth.agents.mcp_config import load_mcp_servers
from hearth.config import ConfigError, load_models_config


@pytest.mark.parametrize(
    ("query", "label"),
    [
        ("hello there!", "chit-chat"),
        ("Thanks so much", "chit-chat"),
        ("Write a haiku about autumn rain", "creative"),
        ("Why does the boundary layer separate?", "analytical"),
        ("Compare dense and sparse retrieval", "analytical"),
        ("What is the boiler pressure?", "factual"),
        ("hello, what is the boiling point of water?", "factual"),
    ],
)
def test_rules_classify(query: str, label: str) -> None:
    assert classify.rules(query) == label


def test_model_labels_are_used_only_when_unambiguous() -> None:
    assert classify.parse_label("Factual.") == "factual"
    assert classify.parse_label("Category: chit chat") == "chit-chat"
    assert classify.parse_label("factual or analytical") is None
    assert classify.parse_label("purple") is None


@pytest.mark.parametrize(
    ("reply", "score"),
    [
        ('{"score": 87, "reason": "ok"}', 87),
        ('Here: {"score": 42.6}', 43),
        ("Score: 70/100", 70),
        ("I'd give it 55/100.", 55),
        ("90", 90),
        ("score = 140", None),  # out of range
        ('{"score": "high"}', None),
        ("A fine answer with 3 points.", None),
        ("", None),
    ],
)
def test_judge_scores_parse(reply: str, score: int | None) -> None:
    assert judge.parse_score(reply) == score


def test_signals_score_grounded_cited_answers_high_and_loops_low() -> None:
    sources = ["The boiler pressure should read 1.5 bar when cold."]
    good = judge.signals(
        question="boiler pressure?",
        answer="The boiler pressure should read 1.5 bar [1].",
        sources=sources,
        citations_expected=True,
    )
    assert good["score"] >= 90 and good["citation_coverage"] == 1.0
    uncited = judge.signals(
        question="boiler pressure?",
        answer="Bananas are yellow fruit.",
        sources=sources,
        citations_expected=True,
    )
    assert uncited["score"] < 60
    wrong_cite = judge.signals(
        question="boiler pressure?", answer="It is 1.5 bar [4].", sources=sources, citations_expected=True
    )
    assert wrong_cite["citation_coverage"] == 0.0
    loop = judge.signals(
        question="What is the capital of France?",
        answer="I like trains. " * 6,
        sources=[],
        citations_expected=False,
    )
    assert loop["repetition"] > 0.5 and loop["score"] < 60
    assert judge.signals(question="q", answer="  ", sources=[], citations_expected=False)["score"] == 0


def test_calculator() -> None:
    assert calculator.evaluate("(3 + 4) * 2 ** 3") == 56
    assert calculator.evaluate("sqrt(16) + max(1, 2)") == 6
    assert calculator.evaluate("7 / 2") == 3.5
    assert calculator.evaluate("2^10") == 1024
    for bad in ("__import__('os')", "9 ** 99999", "1 / 0", "x + 1", "[1, 2]", "sqrt(-1)", "'a' * 3"):
        with pytest.raises(calculator.CalculatorError):
            calculator.evaluate(bad)


def test_mcp_servers_section(tmp_path: Path) -> None:
    config = tmp_path / "hearth.yaml"
    config.write_text(
        "include_defaults: false\n"
        "mcp_servers:\n"
        "  files: {url: 'http://127.0.0.1:9000/mcp', timeout: 5}\n"
        "  clock: {command: python, args: ['-m', 'clock']}\n"
    )
    load_models_config(config)  # the model catalogue ignores the section
    servers = load_mcp_servers(config)
    assert servers["files"].url and servers["files"].timeout == 5 and servers["clock"].args == ["-m", "clock"]
    config.write_text("mcp_servers:\n  both: {url: 'http://x/mcp', command: python}\n")
    with pytest.raises(ConfigError, match=r"mcp_servers\.both"):
        load_mcp_servers(config)
    config.write_text("mcp_servers:\n  bad: {url: 'http://x/mcp', tiemout: 5}\n")
    with pytest.raises(ConfigError, match=r"mcp_servers\.bad\.tiemout"):
        load_mcp_servers(config)
    config.write_text("mcp_server: {}\n")
    with pytest.raises(ConfigError, match="did you mean 'mcp_servers'"):
        load_models_config(config)
