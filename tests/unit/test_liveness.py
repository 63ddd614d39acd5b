"""Down/back events from consecutive missed rounds."""

from __future__ import annotations

from gossip.node.liveness import DOWN_AFTER, LATE_WAIT_FACTOR, LATE_WAIT_MIN_S, Liveness


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


def test_a_round_waits_fully_for_good_neighbours_briefly_for_late_ones_and_not_for_the_down() -> None:
    """Good standing: the timeout; one miss: the late wait; down: nothing — unless it was heard in the last round,
    then the late wait every DOWN_AFTER-th round (alive but behind, catching up); already past the round: nothing."""
    live = Liveness([1, 2, 3, 4])
    assert live.waits(0, [1, 2, 3, 4]) == ([1, 2, 3, 4], [])
    live.observe(0, arrived=[1, 4], missing=[2, 3])
    assert live.waits(1, [1, 2, 3, 4]) == ([1, 4], [2, 3])
    for t in range(1, DOWN_AFTER):
        live.observe(t, arrived=[1, 4], missing=[2, 3])
    assert live.down == {2, 3}
    live.heard(4, 9, our_round=DOWN_AFTER)  # 4 showed a later round: its model of this one is here or lost
    assert live.waits(DOWN_AFTER, [1, 2, 3, 4]) == ([1], [])
    live.heard(3, DOWN_AFTER - 2, our_round=DOWN_AFTER)  # 3 is alive, two rounds behind
    waited = []
    for t in range(DOWN_AFTER, 3 * DOWN_AFTER):
        waited.append(3 in live.waits(t, [3])[1])
        live.observe(t, arrived=[], missing=[3])
        live.heard(3, t - 1, our_round=t)
    assert waited.count(True) == 2 and waited[0] is True  # streak 3, then 6: once every DOWN_AFTER rounds
    live.observe(10, arrived=[3], missing=[])
    assert live.waits(11, [3]) == ([3], [])  # its model came in time: good standing again


def test_the_late_wait_follows_the_recent_rounds_between_a_floor_and_the_timeout() -> None:
    """Before any round was timed the late wait is the timeout; then LATE_WAIT_FACTOR times the median of the
    recent rounds, never under LATE_WAIT_MIN_S nor over the timeout."""
    live = Liveness([1])
    assert live.late_wait_s(2.0) == 2.0
    for s in (0.2, 0.1, 5.0):
        live.round_took(s)
    assert live.late_wait_s(2.0) == LATE_WAIT_FACTOR * 0.2
    assert live.late_wait_s(0.3) == 0.3
    fast = Liveness([1])
    fast.round_took(0.001)
    assert fast.late_wait_s(2.0) == LATE_WAIT_MIN_S


def test_how_far_ahead_is_the_lowest_round_of_the_live_neighbours_and_a_claim_lasts_until_the_next_message() -> None:
    """One neighbour claiming a far round does not move the minimum while another is where we are; a neighbour that
    is down or gone does not count; the latest message wins, so the real neighbour's next model undoes a forged claim."""
    live = Liveness([1, 2, 3])
    assert live.ahead() is None
    live.heard(1, 2**40, our_round=5)
    live.heard(2, 5, our_round=5)
    assert live.ahead() == 5
    assert live.ahead(gone=[2]) == 2**40
    live.heard(1, 6, our_round=5)
    assert live.round_of(1) == 6 and live.ahead() == 5
    for t in range(DOWN_AFTER):
        live.observe(t, arrived=[1], missing=[2, 3])
    assert live.ahead() == 6  # 2 is down
    assert live.silent(DOWN_AFTER + 5) == [2, 3]  # down and not heard lately: greeted by the node
    live.heard(2, 7, our_round=DOWN_AFTER + 5)
    assert live.silent(DOWN_AFTER + 5) == [3]
