"""Per-sender rate limits: a token bucket per transport-vouched sender, bounded by the node count.

Validation is cheap but not free (a NaN scan of a large payload is a full pass over it), so a peer
that floods a node must hit a budget before it costs the node its rounds. Buckets are keyed by the
sender the transport vouches for — a neighbour's id, or one shared bucket for everything that is not
a node of this run — so their number is bounded whatever a peer sends. Without CURVE a routing id
can be forged, so a flood under a neighbour's name spends that neighbour's budget (documented in
docs/concepts/threat-model.md); with CURVE the sender is authenticated.
"""

from __future__ import annotations

import time

__all__ = ["RateLimiter"]


class RateLimiter:
    """``allow(sender)`` is True while the sender is within ``rate`` messages/s with bursts of ``burst``."""

    def __init__(self, rate_per_s: float, burst: int, node_count: int) -> None:
        self.rate = rate_per_s
        self.burst = float(burst)
        self._node_count = node_count
        self._tokens: dict[int, float] = {}
        self._stamp: dict[int, float] = {}

    def allow(self, sender: int | None, now: float | None = None) -> bool:
        if self.rate <= 0:
            return True
        key = sender if sender is not None and 0 <= sender < self._node_count else -1
        now = time.monotonic() if now is None else now
        tokens = min(self.burst, self._tokens.get(key, self.burst) + (now - self._stamp.get(key, now)) * self.rate)
        self._stamp[key] = now
        if tokens < 1.0:
            self._tokens[key] = tokens
            return False
        self._tokens[key] = tokens - 1.0
        return True
