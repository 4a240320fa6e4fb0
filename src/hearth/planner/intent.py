"""Intent extraction: the `chat` alias asked for JSON, and a deterministic parser of the same text.

The embedded model is tiny, so its JSON is often missing, invalid or wrong; the parser's reading is the floor.
The model's fields are taken only where they validate, and the parser fills the rest (and wins on the number
of users when the text states one the model got wrong, since the parser reads it literally)."""

from __future__ import annotations

import json
import logging
import re
from typing import TYPE_CHECKING, Any

from pydantic import ValidationError

from hearth.planner.schemas import Intent

if TYPE_CHECKING:
    from hearth.gateway.service import Caller, Gateway

log = logging.getLogger("hearth.planner")

# Keyword → use case, checked in order (the more specific phrases first).
_USE_CASE_PATTERNS: list[tuple[str, str]] = [
    (
        r"\b(legal|law firm|contracts?|case law|research (papers?|analysis)|due diligence|patents?)\b",
        "research_legal_analysis",
    ),
    (
        r"\b(long|lengthy|large)\b.{0,30}\b(documents?|reports?|transcripts?|books?|pdfs?)\b.{0,40}\bsummar",
        "long_document_summarization",
    ),
    (
        r"\bsummar\w*\b.{0,40}\b(long|lengthy|large|100[- ]page|books?|transcripts?|reports?)\b",
        "long_document_summarization",
    ),
    (
        r"\b(autocomplete|auto-complete|code completion|complete code|"
        r"completions? in (the|an|my) (ide|editor)|"
        r"copilot|inline suggestions?|tab completion)\b",
        "code_completion",
    ),
    (
        r"\b(generate|generates|write|writes|writing|generating)\b.{0,30}\b(code|functions?|programs?|scripts?|classes)\b|"
        r"\bcode (generation|assistant)|\bcoding assistant|\bprogramming assistant",
        "code_generation_detailed",
    ),
    (r"\b(translat\w*|locali[sz]\w*|multilingual)\b", "translation"),
    (
        r"\b(rag|retrieval|knowledge base|our docs|documentation|internal documents|question answering over|"
        r"search (our|the|internal)|answers? from (our|the) (docs|documents|wiki))\b",
        "document_analysis_rag",
    ),
    (r"\b(summar\w*|tl;?dr|digest)\b", "summarization_short"),
    (
        r"\b(marketing|copywriting|blog posts?|articles?|content (generation|creation|writing)|write emails?|"
        r"product descriptions?|social media posts?)\b",
        "content_generation",
    ),
    (
        r"\b(chat\s?bot|chat|assistant|support|helpdesk|help desk|customer service|conversational|q&a|faq)\b",
        "chatbot_conversational",
    ),
]

_NUMBER_WORDS = {
    "a hundred": 100,
    "one hundred": 100,
    "a thousand": 1000,
    "one thousand": 1000,
    "two thousand": 2000,
    "three thousand": 3000,
    "five thousand": 5000,
    "ten thousand": 10_000,
    "fifty thousand": 50_000,
    "a hundred thousand": 100_000,
    "a million": 1_000_000,
    "one million": 1_000_000,
    "a dozen": 12,
    "fifty": 50,
    "twenty": 20,
    "ten": 10,
    "hundred": 100,
    "thousand": 1000,
}
_SCALE = {"k": 1e3, "thousand": 1e3, "m": 1e6, "mm": 1e6, "million": 1e6, "b": 1e9, "billion": 1e9}
_NUM = r"(\d{1,3}(?:[,\s]\d{3})+|\d+(?:\.\d+)?)\s*(k|m|mm|b|thousand|million|billion)?\b"
_PEOPLE = (
    r"(users?|people|employees|staff|customers|clients|students|agents|developers|engineers|members|"
    r"seats|visitors|players|lawyers|analysts|persons|concurrent|daily active|DAU|MAU)"
)

_GPU_PATTERNS: list[tuple[str, str]] = [
    (r"\bh200s?\b", "H200-141GB"),
    (r"\bh100s?\b", "H100-80GB"),
    (r"\ba100s?\b", "A100-80GB"),
    (r"\bl40s\b", "L40S-48GB"),
    (r"\bl4s?\b", "L4-24GB"),
]

_DOMAINS: list[tuple[str, str]] = [
    (r"\b(legal|law|contracts?|lawyers?)\b", "legal"),
    (r"\b(medical|health|clinical|patients?|hospital)\b", "healthcare"),
    (r"\b(bank|finance|financial|trading|insurance)\b", "finance"),
    (r"\b(code|coding|developers?|software|programming|engineers?)\b", "software"),
    (r"\b(customer|support|helpdesk|help desk|tickets?)\b", "customer support"),
    (r"\b(students?|education|school|university|teachers?)\b", "education"),
    (r"\b(retail|e-?commerce|shop|store)\b", "retail"),
]


def _to_number(digits: str, scale: str | None) -> float:
    value = float(re.sub(r"[,\s]", "", digits))
    return value * _SCALE.get((scale or "").lower(), 1.0)


def parse_users(text: str) -> int | None:
    """The number of users the text states ("5,000 users", "5k employees", "a team of 40", "ten thousand")."""
    t = text.lower()
    m = re.search(_NUM + r"\s*(?:\w+\s){0,3}?" + _PEOPLE.lower(), t)
    if m:
        return int(_to_number(m.group(1), m.group(2)))
    m = re.search(
        r"(?:for|serve|serving|support|supporting|team of|company of|audience of|base of)\s+"
        r"(?:about|around|roughly|up to|~)?\s*" + _NUM,
        t,
    )
    if m:
        return int(_to_number(m.group(1), m.group(2)))
    for words, value in sorted(_NUMBER_WORDS.items(), key=lambda kv: -len(kv[0])):
        if re.search(rf"\b{words}\s+(?:\w+\s){{0,2}}?{_PEOPLE.lower()}", t):
            return value
    return None


def parse_budget(text: str) -> float | None:
    """A monthly budget ("$10k/month", "budget of 5000 dollars", "under 20,000 USD a month"); yearly ÷ 12."""
    t = text.lower()
    patterns = [
        r"\$\s*" + _NUM + r"\s*(?:(?:/|per|a|an|each)\s*(month|mo|year|yr|annum))?",
        _NUM + r"\s*(?:usd|dollars|\$|eur|euros|€)\s*(?:(?:/|per|a|an|each)\s*(month|mo|year|yr|annum))?",
        r"budget\s+(?:is\s+|of\s+)?(?:about\s+|around\s+|under\s+)?"
        + _NUM
        + r"\s*(?:(?:/|per|a|an|each)\s*(month|mo|year|yr|annum))?",
    ]
    for pattern in patterns:
        m = re.search(pattern, t)
        if m:
            value = _to_number(m.group(1), m.group(2))
            period = m.group(3) or ""
            return value / 12.0 if period.startswith(("y", "a")) else value
    return None


def parse_latency_priority(text: str) -> str:
    t = text.lower()
    if re.search(
        r"\b(real[- ]?time|low[- ]latency|latency[- ](is )?(critical|sensitive|matters)|instant\w*|"
        r"snappy|as fast as possible|very fast|responsive|no lag|sub-second)\b",
        t,
    ):
        return "high"
    if re.search(
        r"\b(batch|overnight|offline|not urgent|no rush|latency (is not|isn't) (important|critical)|"
        r"cheap(est)? (is|matters)|cost matters most|can wait|asynchronous)\b",
        t,
    ):
        return "low"
    return "medium"


def parse_intent(text: str) -> Intent:
    """The deterministic reading of a request; raises ValueError when the text names no number of users."""
    t = text.lower()
    use_case = "chatbot_conversational"
    for pattern, name in _USE_CASE_PATTERNS:
        if re.search(pattern, t):
            use_case = name
            break
    users = parse_users(text)
    if users is None:
        raise ValueError("say how many users the service is for, e.g. 'a chatbot for 5,000 employees'")
    if users <= 0:
        raise ValueError("the number of users must be positive")
    gpus = [name for pattern, name in _GPU_PATTERNS if re.search(pattern, t)]
    domain = next((d for pattern, d in _DOMAINS if re.search(pattern, t)), None)
    return Intent(
        use_case=use_case,  # type: ignore[arg-type]
        users=users,
        latency_priority=parse_latency_priority(text),  # type: ignore[arg-type]
        budget_per_month=parse_budget(text),
        preferred_gpus=gpus,
        domain=domain,
    )


SYSTEM_PROMPT = (
    "You extract a deployment intent from a user's description of an LLM service. Reply with one JSON object "
    "and nothing else, with keys: use_case (one of chatbot_conversational, code_completion, "
    "code_generation_detailed, translation, content_generation, summarization_short, document_analysis_rag, "
    "long_document_summarization, research_legal_analysis), users (integer), "
    "latency_priority (low, medium or "
    "high), budget_per_month (number in USD or null), preferred_gpus (list of H100, H200, A100, L40S, L4), "
    "domain (short string or null)."
)


def extract_json(content: str) -> dict[str, Any] | None:
    """The first JSON object in a model's reply (it may wrap it in prose or a code fence)."""
    start = content.find("{")
    while start != -1:
        depth = 0
        for i in range(start, len(content)):
            if content[i] == "{":
                depth += 1
            elif content[i] == "}":
                depth -= 1
                if depth == 0:
                    try:
                        value = json.loads(content[start : i + 1])
                    except json.JSONDecodeError:
                        break
                    return value if isinstance(value, dict) else None
        start = content.find("{", start + 1)
    return None


_GPU_ALIASES = {
    "h200": "H200-141GB",
    "h100": "H100-80GB",
    "a100": "A100-80GB",
    "l40s": "L40S-48GB",
    "l4": "L4-24GB",
}


def merge_model_intent(data: dict[str, Any] | None, text: str) -> tuple[Intent, str]:
    """Combine the model's JSON with the parser's reading: (intent, "model" | "parser").

    Each field of the model's JSON is kept if it validates on its own; the parser supplies the rest. The
    number of users stated in the text is read literally by the parser, which wins over the model's."""
    try:
        parsed: Intent | None = parse_intent(text)
    except ValueError:
        parsed = None
    base = parsed.model_dump() if parsed else {"use_case": "chatbot_conversational", "users": 1}
    accepted: dict[str, Any] = {}
    gpus = (data or {}).get("preferred_gpus")
    if isinstance(gpus, list):
        data = {**(data or {}), "preferred_gpus": [_gpu_name(str(g)) for g in gpus]}
    for name in Intent.model_fields:
        value = (data or {}).get(name)
        if value is None:
            continue
        try:
            Intent(**{**base, name: value})
        except (ValidationError, TypeError):
            continue
        accepted[name] = value
    if parsed is not None:
        accepted.pop("users", None)
    elif "users" not in accepted:
        raise ValueError("say how many users the service is for, e.g. 'a chatbot for 5,000 employees'")
    intent = Intent(**{**base, **accepted})
    return intent, "model" if accepted else "parser"


def _gpu_name(value: str) -> str:
    key = value.lower().replace("nvidia", "").strip().replace(" ", "-").split("-")[0]
    return _GPU_ALIASES.get(key, value)


async def extract_intent(
    text: str, *, gateway: Gateway | None, caller: Caller, use_model: bool = True
) -> tuple[Intent, str]:
    """Ask the chat alias for the intent as JSON; fall back to the parser field by field."""
    data = None
    if use_model and gateway is not None and gateway.has_alias("chat"):
        body = {
            "model": "chat",
            "messages": [{"role": "system", "content": SYSTEM_PROMPT}, {"role": "user", "content": text}],
            "temperature": 0,
            "max_tokens": 200,
            "response_format": {"type": "json_object"},
        }
        try:
            response = await gateway.chat(body, caller)
            content = response["choices"][0]["message"].get("content") or ""
            data = extract_json(content)
        except Exception as exc:  # the model is an aid; the parser still answers
            log.warning("intent extraction by the chat model failed: %s", exc)
    return merge_model_intent(data, text)
