"""Which rounds a node logs: the first, then one per interval, changes of missing neighbours at once, the last when it stops."""

from __future__ import annotations

from typing import Any

from gossip.node.roundlog import RoundLines


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def record(round_: int, missing: list[int] | None = None, **extra: Any) -> dict[str, Any]:
    return {"round": round_, "missing": missing or [], **extra}


def test_the_first_round_is_logged_then_at_most_one_round_per_interval() -> None:
    clock = Clock()
    lines = RoundLines(1.0, clock)
    logged = []
    for t in range(100):  # 100 rounds of 25 ms: 2.5 s
        if lines.due(record(t)):
            logged.append(t)
        clock.now += 0.025
    assert logged == [0, 40, 80]


def test_a_round_whose_missing_neighbours_changed_is_logged_at_once_both_ways() -> None:
    clock = Clock()
    lines = RoundLines(60.0, clock)
    assert lines.due(record(0))
    assert not lines.due(record(1))
    assert lines.due(record(2, missing=[3]))  # neighbour 3 went missing
    assert not lines.due(record(3, missing=[3]))  # still missing: no news
    assert lines.due(record(4))  # back
    assert not lines.due(record(5))


def test_a_resumed_round_is_logged_at_once() -> None:
    lines = RoundLines(60.0, Clock())
    assert lines.due(record(0))
    assert lines.due(record(1, resumed={"checkpoint_round": 1, "joined_round": 1}))


def test_the_last_round_not_logged_is_held_and_handed_over_once() -> None:
    lines = RoundLines(60.0, Clock())
    assert lines.due(record(0))
    assert not lines.due(record(1))
    assert not lines.due(record(2))
    assert lines.take_held() == record(2)
    assert lines.take_held() is None


def test_nothing_is_held_when_the_last_round_was_logged() -> None:
    clock = Clock()
    lines = RoundLines(1.0, clock)
    assert lines.due(record(0))
    assert not lines.due(record(1))
    clock.now += 1.0
    assert lines.due(record(2))  # the last round happened to be due
    assert lines.take_held() is None


def test_interval_zero_logs_every_round() -> None:
    lines = RoundLines(0.0, Clock())  # the clock never moves: still every round
    assert all(lines.due(record(t)) for t in range(50))
    assert lines.take_held() is None
