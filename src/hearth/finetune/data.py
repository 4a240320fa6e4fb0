"""Training data: chat examples from a JSONL file or from a user's own conversations, checked, then split.

An example is one conversation in OpenAI's shape, `{"messages": [{"role": ..., "content": ...}, ...]}`, that
ends with the assistant's reply the model should learn. Everything is checked before any weights load, so a
mistake in line 4,000 of a file is reported in a second, with its line number, not after a training run.
"""

from __future__ import annotations

import json
import random
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ROLES = ("system", "user", "assistant")
MAX_ERRORS = 5  # a file with many mistakes names the first few, not thousands


class DataError(ValueError):
    """Training data that cannot be used, said in a way that tells the user what to fix (line numbers)."""


@dataclass(frozen=True)
class Example:
    """One conversation to learn from: every assistant message in it is a target."""

    messages: tuple[dict[str, str], ...]
    source: str = ""  # where it came from ("data.jsonl:12", "conversation 3"), for messages about it

    @property
    def prompt(self) -> list[dict[str, str]]:
        """The conversation up to its last assistant reply: what a held-out evaluation asks the model."""
        last = max(i for i, m in enumerate(self.messages) if m["role"] == "assistant")
        return [dict(m) for m in self.messages[:last]]

    @property
    def reply(self) -> str:
        """The last assistant reply: what the model should say to `prompt`."""
        return next(m["content"] for m in reversed(self.messages) if m["role"] == "assistant")


def check_messages(messages: Any) -> tuple[dict[str, str], ...]:
    """The messages as plain {role, content} dicts, or a ValueError saying what is wrong with them."""
    if not isinstance(messages, list) or not messages:
        raise ValueError('"messages" must be a non-empty list')
    out = []
    for i, m in enumerate(messages):
        if not isinstance(m, dict):
            raise ValueError(f"messages[{i}] must be an object with role and content")
        role, content = m.get("role"), m.get("content")
        if role not in ROLES:
            raise ValueError(f"messages[{i}].role must be one of {', '.join(ROLES)} (got {role!r})")
        if not isinstance(content, str) or not content.strip():
            raise ValueError(f"messages[{i}].content must be a non-empty string")
        if role == "system" and i != 0:
            raise ValueError(f"messages[{i}]: a system message may only come first")
        out.append({"role": role, "content": content})
    if not any(m["role"] == "assistant" for m in out):
        raise ValueError("there is no assistant message to learn from")
    if not any(m["role"] == "user" for m in out):
        raise ValueError("there is no user message")
    return tuple(out)


def load_jsonl(path: Path | str) -> list[Example]:
    """Examples from a JSONL file, one `{"messages": [...]}` per line (blank lines are skipped). Raises
    DataError naming the file and the line of each mistake (the first few)."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8-sig")  # a BOM (Windows editors) is not an error
    except FileNotFoundError:
        raise DataError(f"{path}: no such file") from None
    except UnicodeDecodeError as exc:
        raise DataError(f"{path}: not UTF-8 text (byte {exc.start}); fix: save it as UTF-8 JSONL") from None
    examples: list[Example] = []
    errors: list[str] = []
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except json.JSONDecodeError as exc:
            errors.append(f"line {number}: not valid JSON ({exc.msg} at column {exc.colno})")
            continue
        if not isinstance(record, dict) or "messages" not in record:
            errors.append(f'line {number}: expected an object like {{"messages": [...]}}')
            continue
        try:
            examples.append(Example(check_messages(record["messages"]), f"{path.name}:{number}"))
        except ValueError as exc:
            errors.append(f"line {number}: {exc}")
    if errors:
        more = f" (and {len(errors) - MAX_ERRORS} more)" if len(errors) > MAX_ERRORS else ""
        raise DataError(f"{path}: " + "; ".join(errors[:MAX_ERRORS]) + more)
    if not examples:
        raise DataError(f'{path}: no examples; fix: write one {{"messages": [...]}} object per line')
    return examples


def from_conversations(conversations: Iterable[Sequence[dict[str, Any]]]) -> list[Example]:
    """Examples from a user's own conversations (each a list of {role, content} messages, oldest first), for
    a caller that has the user's consent. Conversations without an assistant reply, and empty or tool
    messages, are left out rather than refused: they are history, not hand-written training data."""
    examples = []
    for n, conversation in enumerate(conversations, start=1):
        kept = [
            {"role": m["role"], "content": m["content"]}
            for m in conversation
            if m.get("role") in ROLES and isinstance(m.get("content"), str) and m["content"].strip()
        ]
        # A system message mid-conversation (a changed persona) cannot be rendered by the chat template.
        kept = [m for i, m in enumerate(kept) if m["role"] != "system" or i == 0]
        while kept and kept[-1]["role"] != "assistant":
            kept.pop()  # a trailing question with no answer teaches nothing
        try:
            examples.append(Example(check_messages(kept), f"conversation {n}"))
        except ValueError:
            continue
    if not examples:
        raise DataError("no conversation has both a user message and an assistant reply")
    return examples


def split(
    examples: Sequence[Example], *, held_out: float = 0.2, seed: int = 0
) -> tuple[list[Example], list[Example]]:
    """(train, held-out): a seeded shuffle, at least one example on each side. Held-out examples are never
    trained on; their loss before and after says whether the model learnt something general."""
    if len(examples) < 2:
        raise DataError(f"need at least 2 examples (one to train on, one to hold out); got {len(examples)}")
    if not 0 < held_out < 1:
        raise DataError(f"held_out must be between 0 and 1 (a share of the examples); got {held_out}")
    order = list(examples)
    random.Random(seed).shuffle(order)
    n_held = min(len(order) - 1, max(1, round(len(order) * held_out)))
    return order[n_held:], order[:n_held]
