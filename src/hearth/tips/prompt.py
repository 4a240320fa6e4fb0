"""The orchestrator's prompt: global preferences + the active context + the eligible agents' snippets.

The prompt's wording is versioned: change the text below, bump PROMPT_VERSION. Every tip stores the version
that produced it (`tip_scores.prompt_version`), so tips of two wordings can be compared."""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from typing import Any

from hearth.tips.schemas import Preferences

PROMPT_VERSION = "tips-v1"

SYSTEM = (
    "You are a personal productivity assistant. From the notes below, write ONE short, concrete tip the "
    "user can act on now. Reply with the tip only: one sentence, no preamble, no list, no quotes."
)
MAX_TOKENS = {"short": 48, "medium": 80, "long": 128}
MAX_CHARS = 300

JUDGE_SYSTEM = "You grade tips. Reply with one number from 1 (useless) to 10 (very useful), nothing else."


@dataclass(frozen=True, slots=True)
class Snippet:
    """One agent's fresh output, with the lines left after snoozed, dismissed and done tasks are removed."""

    agent_id: str
    priority: float
    lines: list[dict[str, Any]]  # {"text", "ref", "title"}


def messages(prefs: Preferences, context: str | None, snippets: list[Snippet]) -> list[dict[str, str]]:
    notes = "\n".join(f"- ({s.agent_id}) {line['text']}" for s in snippets for line in s.lines)
    user = (
        f"Preferences: tone {prefs.tone}; length {prefs.tip_length}; language {prefs.language}.\n"
        f"Current context: {context or 'none'}.\n"
        f"Notes:\n{notes}\n"
        "Tip:"
    )
    return [{"role": "system", "content": SYSTEM}, {"role": "user", "content": user}]


def judge_messages(notes: list[dict[str, str]], tip: str) -> list[dict[str, str]]:
    return [
        {"role": "system", "content": JUDGE_SYSTEM},
        {
            "role": "user",
            "content": f"{notes[-1]['content'].removesuffix('Tip:')}Tip to grade: {tip}\nGrade:",
        },
    ]


def fingerprint(text: str) -> str:
    """Equal for tips that differ only in case, spacing or punctuation."""
    words = re.findall(r"[\w']+", text.lower())
    return hashlib.sha256(" ".join(words).encode()).hexdigest()


_PREFIX = re.compile(r"^\s*(?:tip\s*[:\-–]\s*|here(?:'s| is) (?:a|your|one) tip\s*[:\-–]?\s*)", re.IGNORECASE)
_AGENT_ECHO = re.compile(
    r"\([a-z][a-z0-9-]+\)|^notes:|^preferences:|^current context:", re.IGNORECASE | re.MULTILINE
)


def clean(raw: str) -> tuple[str | None, str | None]:
    """The model's tip made tidy, or None and why it is unusable (empty or off-format)."""
    lines = [ln.strip() for ln in (raw or "").strip().splitlines() if ln.strip()]
    if not lines:
        return None, "empty output"
    text = _PREFIX.sub("", lines[0]).strip().strip("\"'“”").strip()
    text = re.sub(r"^[-*•\d.)\s]+", "", text).strip()
    if not text:
        return None, "empty output"
    if _AGENT_ECHO.search(raw):
        return None, "off-format: echoes the prompt"
    if len(text) > MAX_CHARS:
        return None, f"off-format: longer than {MAX_CHARS} characters"
    if len(re.findall(r"[^\W\d_]{2,}", text)) < 3:
        return None, "off-format: fewer than three words"
    return text, None


def judge_score(raw: str) -> float | None:
    match = re.search(r"\b(10|[1-9])\b", raw or "")
    return float(match.group(1)) if match else None
