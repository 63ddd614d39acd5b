"""The inbox: bounded, latest-wins, windowed, and deadline-driven."""

from __future__ import annotations

import asyncio
import time

import torch

from gossip.ids import NodeId
from gossip.net.wire import Kind, Message
from gossip.node.inbox import YIELD_EVERY, Inbox


def msg(src: int, round_: int, value: float = 0.0) -> Message:
    return Message(Kind.MODEL, NodeId(src), round_, torch.full((2,), value))


def test_keeps_latest_per_neighbour_and_round() -> None:
    """A repeated message for the same round replaces the earlier one (memory cannot grow)."""
    inbox = Inbox([1, 2])
    assert inbox.put(msg(1, 0, 1.0))
    assert inbox.put(msg(1, 0, 2.0))
    assert float(inbox.arrived(0)[NodeId(1)].payload[0]) == 2.0
    assert len(inbox.arrived(0)) == 1


def test_refuses_outside_window_and_strangers() -> None:
    """Only known neighbours, and only rounds in [current, current + ahead], are kept."""
    inbox = Inbox([1, 2], max_rounds_ahead=2)
    inbox.advance(5)
    assert not inbox.put(msg(1, 4))
    assert not inbox.put(msg(1, 8))
    assert not inbox.put(msg(7, 5))
    assert inbox.put(msg(1, 7))


def test_advance_drops_old_rounds() -> None:
    """Moving on frees what older rounds held."""
    inbox = Inbox([1])
    inbox.put(msg(1, 0))
    inbox.put(msg(1, 1))
    inbox.advance(1)
    assert inbox.arrived(0) == {}
    assert NodeId(1) in inbox.arrived(1)


def test_collect_returns_early_when_everyone_arrived() -> None:
    """collect() wakes as soon as the last expected neighbour's message is put."""

    async def scenario() -> float:
        inbox = Inbox([1, 2])
        loop = asyncio.get_running_loop()
        loop.call_later(0.05, inbox.put, msg(2, 0))
        inbox.put(msg(1, 0))
        start = time.monotonic()
        got = await inbox.collect(0, [1, 2], time.monotonic() + 10)
        assert list(got) == [1, 2]
        return time.monotonic() - start

    assert asyncio.run(scenario()) < 5


def test_collect_returns_partial_set_at_deadline() -> None:
    """A neighbour that never sends costs the deadline, and the rest is returned."""

    async def scenario() -> dict:
        inbox = Inbox([1, 2])
        inbox.put(msg(1, 0))
        return await inbox.collect(0, [1, 2], time.monotonic() + 0.1)

    assert list(asyncio.run(scenario())) == [1]


def test_collect_does_not_wait_for_neighbours_that_left() -> None:
    """A neighbour that said bye is not waited for."""

    async def scenario() -> dict:
        inbox = Inbox([1, 2])
        inbox.put(msg(1, 0))
        inbox.mark_gone(NodeId(2))
        return await inbox.collect(0, [1, 2], time.monotonic() + 30)

    assert list(asyncio.run(scenario())) == [1]


def test_a_neighbour_leaving_during_collect_ends_the_wait() -> None:
    """A bye that arrives while the round waits completes it at once: the round does not sit out the deadline."""

    async def scenario() -> tuple[dict, float]:
        inbox = Inbox([1, 2])
        inbox.put(msg(1, 0))
        asyncio.get_running_loop().call_later(0.05, inbox.mark_gone, NodeId(2))
        start = time.monotonic()
        got = await inbox.collect(0, [1, 2], time.monotonic() + 30)
        return got, time.monotonic() - start

    got, waited = asyncio.run(scenario())
    assert list(got) == [1] and waited < 15


def test_stop_during_collect_ends_the_wait_and_later_collects_return_at_once() -> None:
    """Shutdown (SIGTERM) wakes a waiting round, and a round started afterwards does not wait either."""

    async def scenario() -> float:
        inbox = Inbox([1, 2])
        asyncio.get_running_loop().call_later(0.05, inbox.stop)
        start = time.monotonic()
        assert await inbox.collect(0, [1, 2], time.monotonic() + 30) == {}
        assert await inbox.collect(1, [1, 2], time.monotonic() + 30) == {}
        return time.monotonic() - start

    assert asyncio.run(scenario()) < 15


def test_a_message_for_another_round_does_not_end_the_wait() -> None:
    """Only the awaited round's messages complete it: a neighbour already a round ahead is kept for later."""

    async def scenario() -> tuple[dict, dict]:
        inbox = Inbox([1])
        asyncio.get_running_loop().call_soon(inbox.put, msg(1, 1))
        got = await inbox.collect(0, [1], time.monotonic() + 0.2)
        return got, inbox.arrived(1)

    got, ahead = asyncio.run(scenario())
    assert got == {} and list(ahead) == [1]


def test_rounds_that_need_not_wait_still_let_the_event_loop_run() -> None:
    """Rounds whose models are all here (or whose neighbours all left) yield at least every YIELD_EVERY
    rounds: otherwise a node spinning through such rounds starves its receive task and never sees SIGTERM."""

    async def scenario() -> list[str]:
        inbox = Inbox([1, 2])
        inbox.put(msg(1, 0))
        inbox.mark_gone(NodeId(2))
        ran: list[str] = []
        asyncio.get_running_loop().call_soon(ran.append, "other work")
        for _ in range(YIELD_EVERY):
            await inbox.collect(0, [1, 2], time.monotonic() + 30)
        return list(ran)  # what ran before the last collect returned (the loop runs the rest at shutdown)

    assert asyncio.run(scenario()) == ["other work"]


def test_collect_stops_waiting_for_a_neighbour_that_sent_a_later_round() -> None:
    """A neighbour whose later round's model came is marked passed: its model of this round is here or lost (a
    link delivers in order), so collect() returns without it; the mark ends with the round."""

    async def scenario() -> float:
        inbox = Inbox([1, 2])
        inbox.put(msg(1, 0))
        asyncio.get_running_loop().call_later(0.05, inbox.mark_passed, NodeId(2))
        start = time.monotonic()
        got = await inbox.collect(0, [1, 2], time.monotonic() + 10)
        assert list(got) == [1]
        inbox.advance(1)
        assert await inbox.collect(1, [2], time.monotonic() + 0.05) == {}  # waited the deadline again
        return time.monotonic() - start

    assert asyncio.run(scenario()) < 5
