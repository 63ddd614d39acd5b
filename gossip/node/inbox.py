"""Hold validated neighbour models until the round that needs them, and hand them over by a deadline.

Bounded by construction: at most one message per (known neighbour, round), and only rounds inside
the window ``[current, current + max_rounds_ahead]`` are kept — a peer cannot grow it by sending
more (a repeat for the same round replaces the earlier one: latest wins). Keys are node ids that
already passed validation, never strings chosen by a peer (decentralizepy's unbounded deques are the
counter-example).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterable

from gossip.ids import NodeId
from gossip.net.wire import Message

__all__ = ["Inbox"]

YIELD_EVERY = 8


class Inbox:
    """Latest model per (neighbour, round) inside a sliding round window."""

    def __init__(self, neighbours: Iterable[int], max_rounds_ahead: int = 2) -> None:
        self._neighbours = frozenset(neighbours)
        self._ahead = max_rounds_ahead
        self._default_ahead = max_rounds_ahead
        self._current = 0
        self._by_round: dict[int, dict[NodeId, Message]] = {}
        self.gone: set[NodeId] = set()  # neighbours that said bye: not waited for
        self._passed: set[NodeId] = set()  # neighbours that sent a later round's model: not waited for in this one
        self._stopping = False
        self._waiting: tuple[int, frozenset[int], asyncio.Future[None]] | None = None  # the collect() in progress
        self._unwaited = 0  # collect() calls in a row that returned without waiting

    @property
    def current_round(self) -> int:
        return self._current

    def window(self) -> tuple[int, int]:
        """The rounds a model message may carry to be kept."""
        return self._current, self._current + self._ahead

    def put(self, message: Message) -> bool:
        """Store a validated model message; ``False`` if it is outside the window (caller counts it)."""
        lo, hi = self.window()
        if message.src not in self._neighbours or not lo <= message.round <= hi:
            return False
        self._by_round.setdefault(message.round, {})[message.src] = message
        self._wake_if_complete()
        return True

    def mark_gone(self, node: NodeId) -> None:
        """A neighbour announced it left: stop waiting for it."""
        self.gone.add(node)
        self._wake_if_complete()

    def mark_back(self, node: NodeId) -> None:
        self.gone.discard(node)

    def mark_passed(self, node: NodeId) -> None:
        """``node`` sent a model of a round after the current one: its model of this round is here or lost
        (a link delivers in order), so a collect of this round stops waiting for it."""
        self._passed.add(node)
        self._wake_if_complete()

    def advance(self, round_: int, until: int | None = None) -> None:
        """Move the window to ``[round_, until]`` (default ``round_ + max_rounds_ahead``); older rounds are dropped.

        A sparse schedule passes ``until``: its next communication rounds may lie further ahead.
        """
        self._current = round_
        self._ahead = (until - round_) if until is not None else self._default_ahead
        self._passed.clear()
        for r in [r for r in self._by_round if r < round_]:
            del self._by_round[r]

    def arrived(self, round_: int) -> dict[NodeId, Message]:
        return dict(self._by_round.get(round_, {}))

    async def collect(self, round_: int, expected: Iterable[int], deadline: float) -> dict[NodeId, Message]:
        """Wait until every expected neighbour's round message is here, or until ``deadline``.

        ``deadline`` is a ``time.monotonic()`` value. Returns what arrived, sorted by sender so that
        whatever order the network delivered in, aggregation sees the same order.

        One future per call, resolved by :meth:`put` (or :meth:`mark_gone`, :meth:`stop`) once the round
        is complete, and one timer for the deadline: the round wakes once, not once per message with a
        fresh task per wake, as ``asyncio.wait_for`` on an event would.
        """
        wanted = frozenset(expected)
        if self._complete(round_, wanted) or deadline <= time.monotonic():
            # Rounds that never wait (every neighbour gone, or the models already here) must not starve
            # the receive task or the SIGTERM handler: every YIELD_EVERY of them in a row lets the loop run.
            self._unwaited += 1
            if self._unwaited >= YIELD_EVERY:
                self._unwaited = 0
                await asyncio.sleep(0)
        else:
            self._unwaited = 0
            loop = asyncio.get_running_loop()
            waiter: asyncio.Future[None] = loop.create_future()
            self._waiting = (round_, wanted, waiter)
            timer = loop.call_at(deadline, _resolve, waiter)  # the event loop's clock is time.monotonic()
            try:
                await waiter
            finally:
                timer.cancel()
                self._waiting = None
        got = self._by_round.get(round_, {})
        return {k: got[k] for k in sorted(got)}

    def _complete(self, round_: int, wanted: frozenset[int]) -> bool:
        return self._stopping or wanted <= (self._by_round.get(round_, {}).keys() | self.gone | self._passed)

    def _wake_if_complete(self) -> None:
        if self._waiting is not None:
            round_, wanted, waiter = self._waiting
            if self._complete(round_, wanted):
                _resolve(waiter)

    def stop(self) -> None:
        """Make every current and future :meth:`collect` return at once (shutdown)."""
        self._stopping = True
        self._wake_if_complete()


def _resolve(waiter: asyncio.Future[None]) -> None:
    if not waiter.done():
        waiter.set_result(None)
