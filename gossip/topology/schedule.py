"""Who a node talks to in each synchronous round: the communication schedule and time-varying graphs.

A pure function of (config, topology, node, round): every node evaluates the same schedule, so a
node knows without asking which neighbours will send to it in round t and waits for exactly those
(nothing on the wire announces a round). A round in which a node neither sends nor expects anything
is local training only.

When (``[schedule] mode``):

- ``every``: each round (D-SGD, Lian et al. 2017).
- ``periodic``: rounds t with (t + 1) % period == 0, i.e. after every ``period`` rounds of local steps
  (local SGD / D-SGD with H local steps, Koloskova et al. 2020).
- ``random``: the sparse random pull of Zhu et al. 2025 ("A single merging suffices"): each round
  node i pulls one uniformly random neighbour j with probability p and sets x_i ← (x_i + x_j)/2; j
  is unchanged. On the complete graph this is the paper's "any node". Pulls are row-stochastic, not
  symmetric: the network average drifts a little, as in the paper.
- ``window``: every round inside ``[floor(start·R), floor(end·R))`` (Zhu et al.'s dense window, early
  or late), ``outside`` (none or the random pull) elsewhere.
- ``none``: no communication; with ``[merge] enabled`` the single global merge is the only one.

Whom, in a communication round (``[topology] peers``):

- ``all``: every neighbour, with the topology's mixing weights.
- ``one-peer-exponential`` (Ying et al. 2021): in its c-th communication round node i sends to
  (i + 2^(c mod τ)) mod n and receives from (i − 2^(c mod τ)) mod n, τ = ceil(log2 n), and mixes
  1/2–1/2. Each node sends one model and receives one, so every round's W is (I + P)/2 with P a
  permutation — doubly stochastic, and for n a power of two the product of τ consecutive rounds is
  exactly (1/n)·11ᵀ: the exact average after log2 n rounds. ``c`` counts communication rounds (not
  rounds), so the exactness also holds under ``periodic`` and ``window``.

How the pull travels: there is no request message. The pull of node i in round t is drawn from a
generator seeded by (run seed, t, i), which every node can evaluate; node j sends its round-t model
to exactly the nodes that pull it, and the puller waits for that one model. Same semantics as the
paper's pull, one message instead of two, and reproducible. (The draw is known to every node of the
run — fine for scheduling, not a secret.)
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Literal

import numpy as np

from gossip.config import RunConfig, share_of
from gossip.errors import ConfigError
from gossip.ids import NodeId
from gossip.seeds import pull_seed
from gossip.topology.graph import Topology

__all__ = ["Exchange", "ExchangeKind", "Schedule"]

_NO_WEIGHTS: Mapping[NodeId, float] = MappingProxyType({})


ExchangeKind = Literal["all", "one-peer", "pull", "none"]


@dataclass(frozen=True)
class Exchange:
    """One node's part of one round: whom it sends to, whom it waits for, with which weights."""

    kind: ExchangeKind  # the record's "comm" (async gossip records "push", which is no round of a schedule)
    send_to: tuple[NodeId, ...] = ()
    expect_from: tuple[NodeId, ...] = ()
    weights: Mapping[NodeId, float] | None = field(default=None)  # None: the topology's mixing weights

    @property
    def communicates(self) -> bool:
        return bool(self.send_to or self.expect_from)


class Schedule:
    """The communication plan of a run; :meth:`exchange` is a pure function of (node, round)."""

    def __init__(self, cfg: RunConfig, topology: Topology) -> None:
        self.cfg = cfg.schedule
        self.peers = cfg.topology.peers
        self.rounds = cfg.training.rounds
        self.seed = cfg.run.seed
        self.topology = topology
        self.n = topology.n
        self._neighbours = {i: topology.neighbours(i) for i in range(self.n)}
        self._adjacent = {i: frozenset(nbrs) for i, nbrs in self._neighbours.items()}
        lo = share_of(self.cfg.window_start, self.rounds)  # exact: 0.29 of 100 rounds starts at 29, not 28
        hi = self.rounds if self.cfg.window_end >= 1.0 else share_of(self.cfg.window_end, self.rounds)
        self.window = (lo, max(hi, lo + 1))
        self.tau = max(1, math.ceil(math.log2(self.n))) if self.n > 1 else 1
        if self.peers == "one-peer-exponential":
            missing = [
                (i, (i + 2**k) % self.n)
                for i in range(self.n)
                for k in range(self.tau)
                if (i + 2**k) % self.n != i and not topology.has_edge(i, (i + 2**k) % self.n)
            ]
            if missing:
                u, v = missing[0]
                raise ConfigError(
                    f"[topology] peers = 'one-peer-exponential' needs the edges i ~ i + 2^k of the exponential graph; "
                    f"{topology.name} lacks {u} ~ {v} (use spec 'exponential' or 'one-peer-exponential')"
                )

    # --- when -----------------------------------------------------------------------------------

    def dense(self, t: int) -> bool:
        """Is round t a communication round with the topology's peers (as opposed to a pull or nothing)?"""
        mode = self.cfg.mode
        if mode == "every":
            return True
        if mode == "periodic":
            return (t + 1) % self.cfg.period == 0
        if mode == "window":
            lo, hi = self.window
            return lo <= t < hi
        return False

    def _sparse(self, t: int) -> bool:
        """Is round t a round of random pulls?"""
        if self.cfg.mode == "random":
            return True
        return self.cfg.mode == "window" and self.cfg.outside == "random" and not self.dense(t)

    def dense_index(self, t: int) -> int:
        """How many dense rounds come before round t (the c of the one-peer exponential graph)."""
        mode = self.cfg.mode
        if mode == "every":
            return t
        if mode == "periodic":
            return (t + 1) // self.cfg.period - (1 if self.dense(t) else 0)
        if mode == "window":
            lo, hi = self.window
            return min(max(t - lo, 0), hi - lo)
        return 0

    # --- whom -----------------------------------------------------------------------------------

    def pull(self, i: int, t: int) -> NodeId | None:
        """The neighbour node i pulls in round t, or None (a draw every node can reproduce)."""
        if not self._sparse(t):
            return None
        rng = np.random.default_rng(pull_seed(self.seed, t, i))
        if rng.random() >= self.cfg.probability:
            return None
        nbrs = self._neighbours[i]
        return nbrs[int(rng.integers(len(nbrs)))]

    def exchange(self, i: int, t: int) -> Exchange:
        """Node i's sends, expected arrivals and weights in round t."""
        if self.dense(t):
            if self.peers == "one-peer-exponential":
                hop = 2 ** (self.dense_index(t) % self.tau)
                dst, src = NodeId((i + hop) % self.n), NodeId((i - hop) % self.n)
                if dst == i:
                    return Exchange("none")
                return Exchange("one-peer", (dst,), (src,), MappingProxyType({src: 0.5}))
            nbrs = self._neighbours[i]
            return Exchange("all", nbrs, nbrs, None)
        if self._sparse(t):
            mine = self.pull(i, t)
            pullers = tuple(k for k in self._neighbours[i] if self.pull(k, t) == i)
            expect = (mine,) if mine is not None else ()
            weights = MappingProxyType({mine: 0.5}) if mine is not None else _NO_WEIGHTS
            return Exchange("pull", pullers, expect, weights)
        return Exchange("none")

    def expects(self, i: int, src: int, t: int) -> bool:
        """Does node i wait for a model from ``src`` in round t?"""
        if not 0 <= t < self.rounds:
            return False
        if self.dense(t):
            if self.peers == "one-peer-exponential":
                src_of_i = (i - 2 ** (self.dense_index(t) % self.tau)) % self.n
                return bool(src == src_of_i and src_of_i != i)
            return bool(src in self._adjacent[i])
        return self._sparse(t) and self.pull(i, t) == src

    def horizon(self, i: int, t: int, ahead: int) -> int:
        """The last round of node i's inbox window at round t.

        Between two communications neighbours are not synchronised (local rounds take no wait), so a
        fast neighbour's model for a later communication round must be kept, not refused as too early
        (which would cost the puller a full round timeout later). Deterministic schedules: far enough
        for node i's next ``ahead`` communication rounds, at least ``t + ahead`` — a neighbour cannot
        pass a dense round without our model, so it is never further ahead than that. Random pulls: the
        pulled node never waits for the puller and may run ahead by many rounds, so the window is the
        rest of the run. The inbox stays bounded either way: the node refuses every model the schedule
        did not call for, so it holds at most one model per future round in which it pulls (about
        p × the rounds separating it from its fastest neighbour; in practice small, because every node
        also waits for the peers it pulls).
        """
        base = t + ahead
        mode = self.cfg.mode
        if mode in ("every", "none"):
            return base
        if mode == "periodic":
            period = self.cfg.period
            first = ((t + 1) // period + 1) * period - 1  # the first dense round after t
            return max(base, first + (ahead - 1) * period)
        if mode == "window" and self.cfg.outside == "none":
            lo, hi = self.window
            start = max(t + 1, lo)
            return base if start >= hi else max(base, min(start + ahead - 1, hi - 1))
        return max(base, self.rounds)
