"""The inbox: bounded, latest-wins, windowed, and deadline-driven."""

from __future__ import annotations

import asyncio
import time

import torch

from gossip.ids import NodeId
from gossip.inbox import Inbox
from gossip.wire import Kind, Message


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
