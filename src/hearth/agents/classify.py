"""Query classification: the model's one-word label when it is usable, else a deterministic classifier (the
floor). Categories: factual, analytical, creative, chit-chat."""

from __future__ import annotations

import re

from hearth.agents.schemas import CATEGORIES

PROMPT = (
    "Classify the user's message into exactly one category:\n"
    "factual - asks for a fact, a definition, a number or a name\n"
    "analytical - asks why or how, to compare, explain, evaluate or reason\n"
    "creative - asks to write a story, poem, slogan or to imagine something\n"
    "chit-chat - greetings, thanks, small talk\n"
    "Answer with the category name only."
)

_CHIT_CHAT = re.compile(
    r"^\s*(hi|hello|hey|yo|good (morning|afternoon|evening|night)|thanks?( you)?|thank you|cheers|bye|"
    r"goodbye|how are you|how's it going|what's up|nice to meet you|ok(ay)?|cool|great)\b[\s!.?,]*"
    r"(there|hearth|friend|buddy|everyone|all|again|so much|a lot)?[\s!.?,]*$",
    re.IGNORECASE,
)
_CREATIVE = re.compile(
    r"\b(write|compose|draft|invent|imagine|make up|create)\b.{0,40}\b(poem|story|haiku|song|lyrics|"
    r"limerick|slogan|joke|tale|fable|verse|sonnet|script|name)s?\b|\b(poem|haiku|limerick|sonnet)\b",
    re.IGNORECASE,
)
_ANALYTICAL = re.compile(
    r"\b(why|compare|comparison|contrast|analy[sz]e|analysis|explain|evaluate|assess|trade-?offs?|"
    r"pros and cons|advantages|disadvantages|difference|differ|implications?|impact|effect of|"
    r"how (does|do|did|can|could|would|should)|what (causes|happens))\b",
    re.IGNORECASE,
)


def rules(query: str) -> str:
    """The deterministic classifier: patterns for chit-chat, creative and analytical asks; else factual."""
    text = query.strip()
    if _CHIT_CHAT.match(text):
        return "chit-chat"
    if _CREATIVE.search(text):
        return "creative"
    if _ANALYTICAL.search(text):
        return "analytical"
    return "factual"


def parse_label(answer: str) -> str | None:
    """The single category the model named, or None when it named none or several (unusable)."""
    text = answer.lower().replace("chit chat", "chit-chat").replace("chitchat", "chit-chat")
    found = {c for c in CATEGORIES if re.search(rf"(?<![a-z-]){re.escape(c)}(?![a-z-])", text)}
    return found.pop() if len(found) == 1 else None
