"""Which neighbours look down: consecutive missed rounds per neighbour, and the moment one comes back.

A synchronous node cannot tell a dead neighbour from a slow one: both miss the round timeout. It does
not need to — it mixes what arrived either way — but an operator does, so after ``DOWN_AFTER`` missed
rounds in a row a neighbour is reported down (one log line, ``peers_down`` in the summary) and, when its
model arrives again (a restart), back. The counters per peer already exist in the metrics
(``gossip_peer_missed_rounds_total``, ``gossip_peer_last_seen_round``, ``gossip_peers_alive``); this only
turns them into events, with no Prometheus series of its own.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

__all__ = ["DOWN_AFTER", "Liveness", "PeerEvent"]

DOWN_AFTER = 3  # missed rounds in a row before a neighbour is called down: one miss is often just a late model


@dataclass(frozen=True)
class PeerEvent:
    """A neighbour changed state in ``round``."""

    peer: int
    state: str  # "down" | "back"
    round: int
    missed: int  # consecutive rounds missed (when down: DOWN_AFTER; when back: how long it was away)


class Liveness:
    """Consecutive misses per neighbour; :meth:`observe` returns the state changes of one round."""

    def __init__(self, neighbours: Iterable[int], down_after: int = DOWN_AFTER) -> None:
        self._streak = {int(j): 0 for j in neighbours}
        self._down_after = down_after
        self.down: set[int] = set()
        self.ever_down: set[int] = set()

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
