"""Which neighbours look down, how long a round waits for each, and how far ahead the neighbours are.

A synchronous node cannot tell a dead neighbour from a slow one: both miss the round timeout. It does
not need to — it mixes what arrived either way — but an operator does, so after ``DOWN_AFTER`` missed
rounds in a row a neighbour is reported down (one log line, ``peers_down`` in the summary) and, when its
model arrives again (a restart), back. The counters per peer already exist in the metrics
(``gossip_peer_missed_rounds_total``, ``gossip_peer_last_seen_round``, ``gossip_peers_alive``); this only
turns them into events, with no Prometheus series of its own.

The same streaks decide how long a round waits (:meth:`Liveness.waits`), so that a dead or paused
neighbour costs about one round timeout in all, not one per round:

- a neighbour in good standing (its last model arrived) is waited for up to the round timeout;
- one that missed its last round gets the *late wait*: ``LATE_WAIT_FACTOR`` times the median of the
  node's recent rounds (the network's pace: a late neighbour is about a round behind), at least
  ``LATE_WAIT_MIN_S``, at most the timeout; before any round was timed, the timeout;
- one that is down is not waited for, except every ``DOWN_AFTER``-th round when it was heard in the
  last round: it is alive but behind (catching up in place after a restart, or slow), and without
  a wait now and then both sides would keep the same pace for good, its models always stale; the
  late wait lets it close the gap, and its next model in time brings it back;
- one that already sent a later round's model (or greeted us from a later round) is not waited for:
  its model of this round is here already or lost (a link delivers in order).

And they say how far ahead the neighbours are (:meth:`Liveness.ahead`): the latest round each one
proved by a valid message (models of any round, refused ones included, hellos and welcomes). The
node skips ahead only to the *lowest* round among its live neighbours, so one sender's claim never
moves a node whose other neighbours are where it is.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable
from dataclasses import dataclass

__all__ = ["DOWN_AFTER", "LATE_WAIT_FACTOR", "LATE_WAIT_MIN_S", "Liveness", "PeerEvent"]

DOWN_AFTER = 3  # missed rounds in a row before a neighbour is called down: one miss is often just a late model
LATE_WAIT_FACTOR = 3.0  # a late neighbour is one round behind at most: a few typical rounds are enough for it
LATE_WAIT_MIN_S = 0.1  # floor of the late wait: millisecond rounds jitter by more than their length
ROUND_SAMPLES = 16  # recent round times the late wait is the median of


@dataclass(frozen=True)
class PeerEvent:
    """A neighbour changed state in ``round``."""

    peer: int
    state: str  # "down" | "back"
    round: int
    missed: int  # consecutive rounds missed (when down: DOWN_AFTER; when back: how long it was away)


class Liveness:
    """Consecutive misses and the latest proven round per neighbour; :meth:`observe` returns a round's state changes."""

    def __init__(self, neighbours: Iterable[int], down_after: int = DOWN_AFTER) -> None:
        self._streak = {int(j): 0 for j in neighbours}
        self._down_after = down_after
        self.down: set[int] = set()
        self.ever_down: set[int] = set()
        self._round: dict[int, int] = {}  # the round of each neighbour's latest valid message
        self._heard_in: dict[int, int] = {}  # our round when that message came
        self._round_s: deque[float] = deque(maxlen=ROUND_SAMPLES)

    def observe(self, round_: int, arrived: Iterable[int], missing: Iterable[int]) -> list[PeerEvent]:
        """Record one round's arrivals and misses (neighbours the round did not wait for are left as they were)."""
        events = []
        for j in map(int, missing):
            self._streak[j] = self._streak.get(j, 0) + 1
            if self._streak[j] == self._down_after:
                self.down.add(j)
                self.ever_down.add(j)
                events.append(PeerEvent(j, "down", round_, self._streak[j]))
        for j in map(int, arrived):
            if j in self.down:
                self.down.discard(j)
                events.append(PeerEvent(j, "back", round_, self._streak[j]))
            self._streak[j] = 0
        return events

    # --- where the neighbours are ----------------------------------------------------------------

    def heard(self, peer: int, its_round: int, our_round: int) -> None:
        """A valid message of ``peer`` carried ``its_round`` while we were in ``our_round``.

        The latest message wins, not the highest round: a claim lasts until the neighbour's next message
        (a restarted neighbour comes back lower; a forged claim is overwritten by the real one's next model).
        """
        self._round[int(peer)] = its_round
        self._heard_in[int(peer)] = our_round

    def round_of(self, peer: int) -> int | None:
        """The round of ``peer``'s latest valid message, or None if it sent none yet."""
        return self._round.get(int(peer))

    def ahead(self, gone: Iterable[int] = ()) -> int | None:
        """The lowest latest round among the neighbours that are neither down nor ``gone``; None if none is known."""
        left = set(map(int, gone))
        rounds = [r for j, r in self._round.items() if j not in self.down and j not in left]
        return min(rounds) if rounds else None

    def silent(self, round_: int) -> list[int]:
        """The neighbours that are down and sent nothing in ``round_`` or the round before (dead, or cut off)."""
        return sorted(j for j in self.down if self._heard_in.get(j, -2) < round_ - 1)

    # --- how long to wait for whom -----------------------------------------------------------------

    def waits(self, round_: int, expected: Iterable[int]) -> tuple[list[int], list[int]]:
        """Split a round's expected neighbours: (waited for up to the timeout, given the late wait); the rest are not waited for."""
        patient: list[int] = []
        late: list[int] = []
        for j in map(int, expected):
            its = self._round.get(j)
            if its is not None and its > round_:
                continue  # past this round: its model of it is here already, or lost
            if j in self.down:
                if self._heard_in.get(j, -2) >= round_ - 1 and self._streak[j] % self._down_after == 0:
                    late.append(j)  # alive but behind: a late wait now and then lets it catch up
                continue
            (late if self._streak.get(j, 0) else patient).append(j)
        return patient, late

    def round_took(self, seconds: float) -> None:
        """A round that exchanged models took ``seconds``: a sample of the pace the late wait follows."""
        self._round_s.append(seconds)

    def late_wait_s(self, timeout_s: float) -> float:
        """How long a round waits for a neighbour that missed its last round (the timeout until rounds were timed)."""
        if not self._round_s:
            return timeout_s
        return min(timeout_s, max(LATE_WAIT_MIN_S, LATE_WAIT_FACTOR * _median(self._round_s)))


def _median(values: Iterable[float]) -> float:
    """The median, without the statistics module (a node process does not import it: see tests/e2e/test_launch.py)."""
    ordered = sorted(values)
    mid = len(ordered) // 2
    return ordered[mid] if len(ordered) % 2 else (ordered[mid - 1] + ordered[mid]) / 2
