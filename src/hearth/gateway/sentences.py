"""Cutting text into sentences, whole or as it streams in, so speech can start before a reply is complete."""

from __future__ import annotations

import re

# A sentence ends at . ! ? or … (optionally followed by closing quotes/brackets) and then whitespace; or at a
# line break. "e.g. " and "3.5" do not end one: the first is a known abbreviation, the second has no space.
_END = re.compile(r"(?<=[.!?…])[\"')\]]*\s+|\n+")
_ABBREVIATIONS = {"e.g.", "i.e.", "mr.", "mrs.", "ms.", "dr.", "st.", "vs.", "etc.", "no.", "approx."}
_SPEAKABLE = re.compile(r"\w")
# Where the first piece of a reply may end before its sentence does: after , ; : (then whitespace), at a
# spaced dash (dropped: the pause between clips stands for it), or before a word that opens a clause. Not
# before "and"/"or": they join words as often as clauses ("fish | and chips").
_CLAUSE = re.compile(
    r"(?P<punct>[,;:])\s+|\s+[—–-]+\s+|\s+(?=(?:but|because|which|while|although|though|whereas)\s)",
    re.IGNORECASE,
)


def speakable(text: str) -> bool:
    """Whether text has something to say (a TTS engine would produce no audio for '...' or '—')."""
    return bool(_SPEAKABLE.search(text))


def _ends_with_abbreviation(text: str) -> bool:
    words = text.rsplit(None, 1)
    return bool(words) and words[-1].lower() in _ABBREVIATIONS


def split_sentences(text: str) -> list[str]:
    """Sentences of a whole text, stripped; fragments with nothing to say join their neighbour."""
    buffer = SentenceBuffer()
    out = buffer.feed(text)
    out.extend(buffer.flush())
    return out


class SentenceBuffer:
    """Accumulates streamed text; `feed` returns the sentences completed so far, `flush` the remainder.

    `first_clause_words`: the first piece may end at a clause boundary (a comma, semicolon, colon, spaced
    dash, or before "but", "because", "which" …) once it has that many words, so the first audio of a long
    opening sentence is not held back for the whole sentence."""

    def __init__(self, *, first_clause_words: int = 0) -> None:
        self._text = ""
        self._pending = ""  # completed pieces with nothing to say, carried into the next sentence
        self._first_clause_words = first_clause_words
        self._emitted = 0

    def feed(self, delta: str) -> list[str]:
        self._text += delta
        out: list[str] = []
        start = 0
        for match in _END.finditer(self._text):
            piece = self._text[start : match.start() + len(match.group(0).rstrip())].strip()
            if _ends_with_abbreviation(piece) and "\n" not in match.group(0):
                continue
            start = match.end()
            self._add(piece, out)
        self._text = self._text[start:]
        if self._emitted == 0 and self._first_clause_words and not out:
            for clause in _CLAUSE.finditer(self._text):
                head = self._text[: clause.end("punct") if clause.group("punct") else clause.start()]
                if len(head.split()) >= self._first_clause_words:
                    self._text = self._text[clause.end() :]
                    self._add(head.strip(), out)
                    break
        return out

    def flush(self) -> list[str]:
        out: list[str] = []
        rest = (self._pending + " " + self._text).strip() if self._pending else self._text.strip()
        self._text = self._pending = ""
        if rest and speakable(rest):
            out.append(rest)
            self._emitted += 1
        return out

    def _add(self, piece: str, out: list[str]) -> None:
        if not piece:
            return
        if self._pending:
            piece = f"{self._pending} {piece}"
            self._pending = ""
        if speakable(piece):
            out.append(piece)
            self._emitted += 1
        else:
            self._pending = piece
