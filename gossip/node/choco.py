"""CHOCO-gossip: gossip of top-k compressed differences with error feedback (Koloskova, Stich, Jaggi 2019).

"Decentralized Stochastic Optimization and Gossip Algorithms with Compressed Communication" (ICML
2019). Sparsifying a *model* makes no sense for averaging; CHOCO sparsifies the difference between the
model and a public copy of it. Node i keeps its model x_i, its public copy x̂_i, and a copy x̂_j of each
neighbour's public copy. Each round, after the local steps (CHOCO-SGD):

1. q_i = top_k(x_i − x̂_i) goes to every neighbour as a ``delta`` (k indices and values); x̂_i += q_i;
2. each neighbour j's q_j is added to our x̂_j;
3. x_i += γ Σ_j W_ij (x̂_j − x̂_i) with the topology's weights W and ``choco_gamma`` γ.

What top-k left out stays in x_i − x̂_i and goes out in later rounds: that residual is the error
feedback. Sender and receivers apply the same float32 additions to the same values, so the copies
of x̂_i stay bit-identical — as long as no message is lost. Losses are handled, never ignored:

* a receiver that misses j's message of a round (timeout, dead peer, emulated loss, rejection)
  drops its copy of x̂_j and leaves j out of the mix (its weight goes back to self) until j sends its
  public copy in full (a ``model`` message: a dense resync);
* a node sends a dense resync in its first round (a fresh start, or a resume without copies), every
  ``resync_every`` rounds (the sender cannot see a loss at the receiver), and in the round after a send
  failed or a neighbour greeted us again (it restarted and lost its copies).

A dense round sets x̂_i = x_i: the residual is flushed. Both kinds travel as float32. The tensor
operations themselves (top-k, applying a delta, the mix over the copies) are :mod:`gossip.algorithms.choco`.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass

import torch

from gossip.algorithms.choco import apply_delta, copies_pull, top_k
from gossip.config import CompressionConfig, share_of
from gossip.ids import NodeId
from gossip.net.wire import Kind, Message

__all__ = ["ChocoGossip", "Outgoing"]


@dataclass(frozen=True, slots=True)
class Outgoing:
    """One round's message: a ``model`` (``indices`` None, ``values`` the whole public copy) or a ``delta``."""

    kind: Kind
    values: torch.Tensor
    indices: torch.Tensor | None


class ChocoGossip:
    """The public copies of one node and its neighbours, and the CHOCO-gossip step over them."""

    def __init__(self, model: torch.Tensor, neighbours: Iterable[NodeId], cfg: CompressionConfig) -> None:
        self.cfg = cfg
        self.public = model.detach().clone()  # x̂_i: what every neighbour believes our model is
        self.copies: dict[NodeId, torch.Tensor] = {}  # x̂_j of the neighbours in step with us
        self.neighbours = tuple(neighbours)
        self.k = max(1, share_of(cfg.topk_fraction, model.numel(), up=True))  # exact: 0.07 of 100 is 7, not 8
        self._dense_next = True  # the first round is dense: nobody holds a copy yet
        self._since_dense = 0
        self.dense_sent = 0  # rounds that went out in full (records and tests)

    def outgoing(self, model: torch.Tensor) -> Outgoing:
        """This round's message, with our public copy already updated to what its receivers will hold."""
        periodic = self._since_dense >= self.cfg.resync_every
        if self._dense_next or periodic:
            self._dense_next = False
            self._since_dense = 1
            self.dense_sent += 1
            self.public.copy_(model)
            # a copy: the socket reads the frame after we return, and we add to public next round
            return Outgoing(Kind.MODEL, self.public.clone(), None)
        self._since_dense += 1
        indices, values = top_k(model - self.public, self.k)
        apply_delta(self.public, indices, values)
        return Outgoing(Kind.DELTA, values, indices)

    def resync(self) -> None:
        """Send the public copy in full next round (a send failed, or a neighbour restarted)."""
        self._dense_next = True

    def absorb(self, got: Mapping[NodeId, Message]) -> None:
        """Apply this round's messages to our copies; a neighbour without a message falls out of step."""
        for j in self.neighbours:
            message = got.get(j)
            if message is None or message.payload is None:
                self.copies.pop(j, None)
            elif message.kind is Kind.MODEL:
                self.copies[j] = message.payload.clone()  # own it: the payload may be a view of the frame
            elif message.kind is Kind.DELTA and j in self.copies and message.indices is not None:
                apply_delta(self.copies[j], message.indices, message.payload)
            else:  # a delta to a copy we do not hold: wait for the next dense message
                self.copies.pop(j, None)

    def mix(self, model: torch.Tensor, got: Mapping[NodeId, Message], weights: Mapping[NodeId, float]) -> float:
        """Absorb the round's messages, then x += γ Σ_j W_ij (x̂_j − x̂_i) over the neighbours in step.

        Returns the norm of Σ_j W_ij (x̂_j − x̂_i): the distance of our public copy to its
        neighbourhood average, the compressed analogue of D-SGD's consensus distance.
        """
        self.absorb(got)
        pull = copies_pull(self.public, self.copies, weights)
        model.add_(pull, alpha=self.cfg.gamma)
        return float(torch.linalg.vector_norm(pull))

    @property
    def in_step(self) -> frozenset[NodeId]:
        """The neighbours whose public copy we hold (mixed this round)."""
        return frozenset(self.copies)
