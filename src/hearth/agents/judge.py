"""Judging an answer 0–100: the `judge` model's score when its output parses, else deterministic signals
(citation coverage, answer/source overlap, empty or repeated text). Nothing passes without a score."""

from __future__ import annotations

import re
from typing import Any

import orjson

PROMPT = (
    "You grade an assistant's answer to a question. Give a score from 0 (useless or wrong) to 100 (complete,"
    " correct and supported by the sources when sources are given). Reply as JSON: "
    '{"score": <0-100>, "reason": "<one sentence>"}'
)

_WORD = re.compile(r"[a-z0-9]+")
_CITE = re.compile(r"\[(\d{1,2})\]")
_SENTENCE = re.compile(r"(?<=[.!?])\s+")
_STOP = frozenset(
    [
        "a",
        "an",
        "the",
        "of",
        "to",
        "in",
        "on",
        "for",
        "and",
        "or",
        "is",
        "are",
        "was",
        "were",
        "be",
        "been",
        "it",
        "its",
        "this",
        "that",
        "with",
        "as",
        "at",
        "by",
        "from",
        "what",
        "which",
        "who",
        "whom",
        "how",
        "why",
        "when",
        "where",
        "do",
        "does",
        "did",
        "can",
        "could",
        "should",
        "would",
        "will",
        "not",
        "no",
        "yes",
        "i",
        "you",
        "we",
        "they",
        "he",
        "she",
        "there",
        "their",
        "them",
        "our",
        "your",
        "my",
        "me",
        "us",
    ]
)


def parse_score(text: str) -> int | None:
    """The score in the judge's reply: JSON {"score": n}, "score: n", "n/100", or a reply that is only a
    number. None when none of these is there (the reply is unparseable) or the number is out of range."""
    stripped = text.strip()
    start, end = stripped.find("{"), stripped.rfind("}")
    if start != -1 and end > start:
        try:
            value = orjson.loads(stripped[start : end + 1]).get("score")
            if isinstance(value, int | float) and not isinstance(value, bool):
                return _in_range(value)
        except (orjson.JSONDecodeError, AttributeError):
            pass
    for pattern in (r"score\W{0,4}(\d{1,3}(?:\.\d+)?)", r"(\d{1,3}(?:\.\d+)?)\s*/\s*100\b"):
        match = re.search(pattern, stripped, re.IGNORECASE)
        if match:
            return _in_range(float(match.group(1)))
    if re.fullmatch(r"\d{1,3}(?:\.\d+)?[.!]?", stripped):
        return _in_range(float(stripped.rstrip(".!")))
    return None


def _in_range(value: float) -> int | None:
    return round(value) if 0 <= value <= 100 else None


def _terms(text: str) -> list[str]:
    return [w for w in _WORD.findall(text.lower()) if w not in _STOP and len(w) > 1]


def repetition(text: str) -> float:
    """Share of the answer's word trigrams that repeat an earlier one (0: none, →1: a loop)."""
    words = _WORD.findall(text.lower())
    grams = [tuple(words[i : i + 3]) for i in range(len(words) - 2)]
    if len(grams) < 4:
        return 0.0
    return 1 - len(set(grams)) / len(grams)


def signals(*, question: str, answer: str, sources: list[str], citations_expected: bool) -> dict[str, Any]:
    """Deterministic quality signals and the score built from them (the fallback judge).

    With sources: 40 × citation coverage (sentences citing a source that exists) + 40 × overlap (share of
    the answer's content words found in the sources) + 20 × (1 − repetition). Without: 40 × whether the
    answer has substance (≥ 3 content words) + 30 × (1 − repetition) + 30 × its share of the question's terms
    it addresses (capped at 1 from half of them). An empty answer scores 0."""
    text = answer.strip()
    rep = repetition(text)
    answer_terms = _terms(text)
    if not answer_terms:
        return {"score": 0, "empty": True, "repetition": rep}
    result: dict[str, Any] = {"empty": False, "repetition": round(rep, 3)}
    if citations_expected:
        sentences = [s for s in _SENTENCE.split(text) if _terms(s)]
        valid = [s for s in sentences if any(1 <= int(n) <= len(sources) for n in _CITE.findall(s))]
        coverage = len(valid) / len(sentences) if sentences else 0.0
        source_terms = set(_terms(" ".join(sources)))
        overlap = sum(1 for t in answer_terms if t in source_terms) / len(answer_terms)
        score = 40 * coverage + 40 * overlap + 20 * (1 - rep)
        result.update(citation_coverage=round(coverage, 3), source_overlap=round(overlap, 3))
    else:
        question_terms = set(_terms(question))
        addressed = (
            min(1.0, 2 * len(question_terms & set(answer_terms)) / len(question_terms))
            if question_terms
            else 1.0
        )
        substance = 1.0 if len(answer_terms) >= 3 else len(answer_terms) / 3
        score = 40 * substance + 30 * (1 - rep) + 30 * addressed
        result.update(substance=round(substance, 3), question_overlap=round(addressed, 3))
    result["score"] = round(score)
    return result


def messages(*, question: str, answer: str, sources: list[str]) -> list[dict[str, str]]:
    context = "".join(f"[{i}] {s[:600]}\n" for i, s in enumerate(sources, 1))
    user = (f"Sources:\n{context}\n" if sources else "") + f"Question: {question}\nAnswer: {answer}\n"
    return [{"role": "system", "content": PROMPT}, {"role": "user", "content": user + "JSON:"}]
