"""Is a generated RAG answer grounded in its sources? And if not, an extractive answer instead.

A small model often answers from nowhere ("the atmosphere of the Moon" for a question its sources answer),
or cites nothing. An answer passes when it cites at least one source and most of its content words appear
in the sources it cites. One that fails is replaced by the sources' own best sentences, each cited, and the
response says so (`answer_mode: "extractive_fallback"` and the reason): a plain quote beats a confident
invention."""

from __future__ import annotations

import math
import re
from dataclasses import dataclass

from hearth.rag.schemas import RagSource

MIN_OVERLAP = 0.5  # share of the answer's content words that must appear in the sources it cites
MAX_SENTENCES = 3
_WORD = re.compile(r"[^\W_]+", re.UNICODE)
_CITATION = re.compile(r"\[(\s*\d+\s*(?:,\s*\d+\s*)*)\]")
_SENTENCE_END = re.compile(r"(?<=[.!?])\s+(?=[A-Z0-9\"'(\[])|\n{1,}")
_STOP = frozenset(
    """a about above after again all also am an and any are as at be because been before being below between
    both but by can could did do does doing down during each few for from further had has have having he her
    here hers him his how i if in into is it its itself just me more most my no nor not of off on once only or
    other our out over own same she should so some such than that the their them then there these they this
    those through to too under until up very was we were what when where which while who whom why will with
    would you your yours yes one two use used using may might must shall""".split()  # noqa: SIM905
)


@dataclass(frozen=True)
class Grounded:
    answer: str
    mode: str  # "generated" | "extractive_fallback"
    reason: str | None = None  # why the generated answer was replaced


def content_words(text: str) -> set[str]:
    """Lower-cased words that carry meaning: no stop words, no one- or two-letter words, no bare numbers
    shorter than three digits (citation numbers)."""
    return {w for w in (m.lower() for m in _WORD.findall(text)) if len(w) > 2 and w not in _STOP}


def cited(answer: str, count: int) -> list[int]:
    """The source numbers an answer cites, in order of first citation, within 1..count."""
    found: list[int] = []
    for match in _CITATION.finditer(answer):
        for n in match.group(1).split(","):
            number = int(n)
            if 1 <= number <= count and number not in found:
                found.append(number)
    return found


def check(answer: str, sources: list[RagSource]) -> str | None:
    """Why `answer` is not grounded in `sources`, or None when it is."""
    if not sources:
        return None  # nothing to ground in: the prompt told the model to say it does not know
    if not answer.strip():
        return "the model gave no answer"
    numbers = cited(answer, len(sources))
    if not numbers:
        return "the answer cites no source"
    words = content_words(_CITATION.sub(" ", answer))
    if not words:
        return None
    support = set().union(*(content_words(f"{sources[n - 1].title} {sources[n - 1].text}") for n in numbers))
    overlap = len(words & support) / len(words)
    if overlap < MIN_OVERLAP:
        return f"only {overlap:.0%} of the answer's words appear in the sources it cites"
    return None


def sentences(text: str) -> list[str]:
    return [s.strip() for s in _SENTENCE_END.split(text) if len(s.strip()) > 20]


def extractive(question: str, sources: list[RagSource], limit: int = MAX_SENTENCES) -> str:
    """The sentences of `sources` that share most words with the question, each followed by its [n]; the
    best source's first sentence when none shares any."""
    wanted = content_words(question)
    scored: list[tuple[float, int, int, str]] = []
    for n, source in enumerate(sources, 1):
        for position, sentence in enumerate(sentences(source.text)):
            words = content_words(sentence)
            if not words:
                continue
            # Shared words, a little in favour of short sentences and of better-ranked sources.
            score = len(words & wanted) / math.sqrt(len(words)) - 0.01 * n
            scored.append((score, n, position, sentence))
    best = [row for row in sorted(scored, key=lambda r: -r[0]) if row[0] > 0][:limit]
    if not best:
        first = next((s for s in sentences(sources[0].text)), sources[0].text.strip()[:300])
        return f"{first} [1]"
    # In the order they appear (by source, then position), so a passage reads as written.
    best.sort(key=lambda r: (r[1], r[2]))
    return " ".join(f"{sentence} [{n}]" for _, n, _, sentence in best)


def ground(question: str, answer: str, sources: list[RagSource]) -> Grounded:
    """The answer to return: the generated one when it is grounded, else an extractive one."""
    reason = check(answer, sources)
    if reason is None:
        return Grounded(answer, "generated")
    return Grounded(extractive(question, sources), "extractive_fallback", reason)


def citations(answer: str, sources: list[RagSource]) -> list[dict[str, object]]:
    """Each source the answer cites, by number, with its file name (and page when known)."""
    out: list[dict[str, object]] = []
    for n in cited(answer, len(sources)):
        source = sources[n - 1]
        entry: dict[str, object] = {
            "n": n,
            "file": source.metadata.get("source") or source.title or source.document_id,
            "title": source.title,
            "document_id": source.document_id,
            "chunk_id": source.chunk_id,
        }
        if "page" in source.metadata:
            entry["page"] = source.metadata["page"]
        out.append(entry)
    return out
