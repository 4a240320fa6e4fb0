"""Loop detection: stops a generation that repeats itself (a small model's favourite failure: "hearth
set-port 12345" again and again until max_tokens).

A generation loops when its text ends in one unit of 8 to 300 characters repeated back to back at least
three times and over at least 64 characters (200 when the unit is itself a run of something shorter, as
in a rule of dashes). Exact repeats only: a numbered list or a table, whose rows differ, is not a loop.
The check runs every 16 new characters over the last 2,048, so it costs a few hundred slice comparisons
per check, nothing next to generating the text."""

from __future__ import annotations

MIN_UNIT = 8
MAX_UNIT = 300
MIN_REPEATS = 3
MIN_SPAN = 64
SHORT_SPAN = 200  # a run of one short piece ("-----", "hahaha", "0000") is a loop only over this many
CHECK_EVERY = 16
WINDOW = 2048


class LoopDetector:
    def __init__(self) -> None:
        self.text = ""  # the last WINDOW characters seen, up to the last check
        self.seen = 0  # characters seen in all
        self.unit: str | None = None  # the repeated unit, once a loop is found
        self.keep = 0  # how much of the whole text to keep: up to the end of the unit's first occurrence
        self._unchecked = 0
        # Pieces fed since the last check: appended, and joined onto `text` only when a check is due, so a
        # streamed token costs a list append, not two copies of a 2 KB string (the relay's hot path).
        self._pending: list[str] = []

    @property
    def looped(self) -> bool:
        return self.unit is not None

    def feed(self, piece: str) -> bool:
        """Add generated text; True once the text has started looping (and from then on)."""
        if self.unit is not None or not piece:
            return self.unit is not None
        self._pending.append(piece)
        self.seen += len(piece)
        self._unchecked += len(piece)
        if self._unchecked >= CHECK_EVERY:
            self._join()
            if len(self.text) >= MIN_SPAN:
                self._unchecked = 0
                self._check()
        return self.unit is not None

    def finish(self) -> bool:
        """Check what was fed since the last check (at the end of a whole answer)."""
        self._join()
        if self.unit is None and len(self.text) >= MIN_SPAN:
            self._check()
        return self.unit is not None

    def _join(self) -> None:
        if self._pending:
            self.text = (self.text + "".join(self._pending))[-WINDOW:]
            self._pending.clear()

    def _check(self) -> None:
        text = self.text
        for unit in _candidate_units(text):
            span = max(unit * MIN_REPEATS, MIN_SPAN)
            if span > len(text):
                break
            # The last `span` characters have period `unit` when shifting them by one unit changes nothing.
            if text[-span + unit :] == text[-span:-unit]:
                if _shortest_period(text[-unit:]) < MIN_UNIT and not (
                    len(text) >= SHORT_SPAN and text[-SHORT_SPAN + unit :] == text[-SHORT_SPAN:-unit]
                ):
                    continue  # a rule of dashes or a laugh, not (yet) a loop
                # Walk back to where the repetition began, so the kept text ends after its first whole unit.
                start = len(text) - span
                while start > 0 and text[start - 1] == text[start - 1 + unit]:
                    start -= 1
                self.unit = text[start : start + unit]
                self.keep = self.seen - len(text) + start + unit
                return


def _candidate_units(text: str) -> list[int]:
    """Unit lengths worth checking, shortest first: those at which the text's last MIN_UNIT characters
    occur once more, one unit earlier (found with str.rfind, so ordinary text costs a few microseconds)."""
    size = len(text)
    tail = text[-MIN_UNIT:]
    low = max(0, size - MIN_UNIT - min(MAX_UNIT, size // MIN_REPEATS))
    end = size - MIN_UNIT  # an occurrence must start at least one whole unit before the tail does
    units = []
    while (found := text.rfind(tail, low, end)) >= 0:
        units.append(size - MIN_UNIT - found)
        end = found + MIN_UNIT - 1  # next: an occurrence starting before this one
    return units


def _shortest_period(unit: str) -> int:
    for period in range(1, MIN_UNIT):
        if unit[period:] == unit[:-period]:
            return period
    return len(unit)


def trim_loop(text: str) -> tuple[str, bool]:
    """A whole answer cut after the first occurrence of the unit it loops on, and whether it looped. One
    check of its end: a looping generation runs on until max_tokens, so its loop is where it stops."""
    detector = LoopDetector()
    detector.text, detector.seen = text[-WINDOW:], len(text)
    if detector.finish():
        return text[: detector.keep].rstrip(), True
    return text, False
