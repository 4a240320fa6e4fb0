"""Conversation titles: asked of the `chat` alias after the first exchange, checked, else a fallback."""

from __future__ import annotations

import re

MAX_TITLE_CHARS = 60
MAX_TITLE_WORDS = 10
FALLBACK_WORDS = 8

TITLE_PROMPT = (
    "Write a title of at most six words for the conversation below. "
    "Reply with the title only: no quotes, no explanation."
)

_SPACE = re.compile(r"\s+")
_PREFIX = re.compile(r"^(?:title|subject|topic)\s*[:\-]\s*", re.IGNORECASE)
_EDGE = " \t\"'`*_#.,;:!-–—«»“”‘’()[]{}<>"


def title_request(*, model: str, question: str, answer: str) -> dict:
    """The chat body that asks the model for a title."""
    return {
        "model": model,
        "messages": [
            {"role": "system", "content": TITLE_PROMPT},
            # The question leads: small models' answers can wander, and a title names what was asked.
            {"role": "user", "content": f"User: {question[:600]}\n\nAssistant: {answer[:200]}\n\nTitle:"},
        ],
        "max_tokens": 24,
        "temperature": 0.2,
    }


def clean_title(raw: str | None) -> str | None:
    """The model's title tidied up, or None when it is unusable (empty, too long, junk)."""
    if not raw:
        return None
    lines = [line for line in (raw.strip().splitlines()) if line.strip()]
    if not lines:
        return None
    title = _PREFIX.sub("", _SPACE.sub(" ", lines[0]).strip()).strip(_EDGE)
    if not title or len(title) > MAX_TITLE_CHARS or len(title.split()) > MAX_TITLE_WORDS:
        return None
    letters = sum(c.isalpha() for c in title)
    plain = sum(c.isalnum() or c in " '-,&?!." for c in title)
    # Junk: mostly symbols or digits, markup, or a leaked special token.
    if letters < 2 or plain / len(title) < 0.85 or "<|" in title or "http" in title.lower():
        return None
    return title[0].upper() + title[1:]


def fallback_title(question: str) -> str:
    """A deterministic title from the first user message: its first words, cut at a word boundary."""
    words = _SPACE.split(question.strip())
    title = ""
    for word in words[:FALLBACK_WORDS]:
        candidate = f"{title} {word}".strip()
        if len(candidate) > MAX_TITLE_CHARS:
            break
        title = candidate
    if not title and words:
        title = words[0][:MAX_TITLE_CHARS]
    title = title.strip(_EDGE)
    if not any(c.isalnum() for c in title):
        return "New conversation"
    return title[0].upper() + title[1:]
