"""Down/back events from consecutive missed rounds."""

from __future__ import annotations

from gossip.liveness import DOWN_AFTER, Liveness


def test_a_neighbour_is_down_after_consecutive_misses_and_back_when_its_model_arrives() -> None:
    """DOWN_AFTER misses in a row make one 'down' event; a later arrival one 'back' event with the streak length;
    isolated misses never do."""
    live = Liveness([1, 2])
    events = []
    for t in range(DOWN_AFTER + 2):
        events += live.observe(t, arrived=[2], missing=[1])
    assert [(e.peer, e.state, e.round) for e in events] == [(1, "down", DOWN_AFTER - 1)]
    assert live.down == {1}
    back = live.observe(10, arrived=[1, 2], missing=[])
    assert [(e.peer, e.state, e.missed) for e in back] == [(1, "back", DOWN_AFTER + 2)]
    assert live.down == set() and live.ever_down == {1}
    for t in range(20):  # a miss every other round is lateness, not death
        assert live.observe(11 + t, arrived=[2] + ([1] if t % 2 else []), missing=[] if t % 2 else [1]) == []
