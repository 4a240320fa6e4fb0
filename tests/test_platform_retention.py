"""The retention sweeper applies every registered rule with the injected clock's cutoff."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from hearth.platform.retention import RetentionRule, RetentionSweeper

NOW = datetime(2026, 11, 22, 12, 0, tzinfo=UTC)


def _store(ages_hours: list[float]) -> list[datetime]:
    return [NOW - timedelta(hours=h) for h in ages_hours]


async def test_each_rule_deletes_only_what_is_older_than_its_own_max_age() -> None:
    audio = _store([0.5, 0.99, 1.01, 5])
    text = _store([1, 24 * 29, 24 * 31])

    def deleter(items: list[datetime]):  # type: ignore[no-untyped-def]
        async def sweep(cutoff: datetime) -> int:
            old = [t for t in items if t < cutoff]
            for t in old:
                items.remove(t)
            return len(old)

        return sweep

    sweeper = RetentionSweeper(clock=lambda: NOW, interval_seconds=0)
    sweeper.register(RetentionRule("voice.audio", timedelta(hours=1), deleter(audio)))
    sweeper.register(RetentionRule("chat.text", timedelta(days=30), deleter(text)))

    assert await sweeper.run_once() == {"voice.audio": 2, "chat.text": 1}
    assert audio == _store([0.5, 0.99])
    assert text == _store([1, 24 * 29])
    assert await sweeper.run_once() == {"voice.audio": 0, "chat.text": 0}


async def test_a_failing_rule_does_not_stop_the_others() -> None:
    swept: list[datetime] = []

    async def broken(cutoff: datetime) -> int:
        raise RuntimeError("store unreachable")

    async def working(cutoff: datetime) -> int:
        swept.append(cutoff)
        return 3

    sweeper = RetentionSweeper(clock=lambda: NOW, interval_seconds=0)
    sweeper.register(RetentionRule("a", timedelta(hours=1), broken))
    sweeper.register(RetentionRule("b", timedelta(days=7), working))
    assert await sweeper.run_once() == {"a": 0, "b": 3}
    assert swept == [NOW - timedelta(days=7)]


def test_a_rule_name_cannot_be_registered_twice() -> None:
    async def sweep(cutoff: datetime) -> int:
        return 0

    sweeper = RetentionSweeper(interval_seconds=0)
    sweeper.register(RetentionRule("chat.text", timedelta(days=30), sweep))
    with pytest.raises(ValueError, match="registered twice"):
        sweeper.register(RetentionRule("chat.text", timedelta(days=1), sweep))
