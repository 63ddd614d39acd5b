"""Push-sum weights (Kempe, Dobra, Gehrke 2003; SGP, Assran et al. 2019) for one-way sends.

When to use it: whenever sends are one-way and in-degrees vary — async gossip, where a node pushes to
a random neighbour and the receiver merges, so in any stretch of time some nodes receive more than
others. Plain merging (x_j ← (x_j + x_i)/2, Ormándi et al. 2013) is then row-stochastic but not
column-stochastic, and the network average drifts. Push-sum keeps it: each node holds a pair
(s, w), initially (x, 1); a push keeps half and sends half, a receiver adds what it gets; the
de-biased model z = s/w is what trains and is evaluated. Σ s and Σ w are conserved, so Σ s / Σ w —
the average of the initial models — never moves (with lr 0; with training, it moves by the
gradient steps only).

When not to: synchronous rounds with symmetric, doubly stochastic weights (Metropolis–Hastings, the
one-peer exponential graph's 1/2–1/2 with one send and one receive per node) keep the average
already; push-sum would only add a number that must travel.

Representation: a node keeps z (its model vector) and its mass w. Absorbing messages (z_r, w_r) is
z ← (w·z + Σ w_r z_r) / (w + Σ w_r), w ← w + Σ w_r — a weighted average with weights w_r / (w + Σ w_r),
so it goes through :func:`gossip.algorithms.weighted_average` (and composes with the variance
correction in ``self_weight = "mixing"`` mode). Honest caveats: the mass is the one number a node
takes from a message, so it is bounded on the wire (0 < w ≤ n); a lost message loses its mass (the
average then drifts by that share), and a Byzantine sender can claim a large share — push-sum is no
more robust than D-SGD.
"""

from __future__ import annotations

from collections.abc import Mapping

from gossip.ids import NodeId

__all__ = ["absorb_weights", "split_mass"]


def split_mass(mass: float) -> tuple[float, float]:
    """(kept, sent): a push hands over half of the sender's mass."""
    half = mass / 2.0
    return mass - half, half


def absorb_weights(own_mass: float, received: Mapping[NodeId, float]) -> tuple[dict[NodeId, float], float]:
    """The mixing weights w_r / (w + Σ w_r) for received masses, and the node's new mass w + Σ w_r."""
    total = own_mass + sum(received[j] for j in sorted(received))
    return {j: received[j] / total for j in received}, total
