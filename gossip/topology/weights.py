"""Mixing weights: the matrix W every node derives from the graph alone, its spectral gap, and which rules a graph admits.

Pure functions of the node count and the edge set (the :class:`~gossip.topology.graph.Topology` methods
call them), cached on the edge set: a launcher and each node ask for the same W many times. A node never
takes a weight, or a degree, from a message.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from typing import get_args

import numpy as np

from gossip.config.choices import WeightsKind
from gossip.errors import TopologyError

__all__ = ["WEIGHT_KINDS", "check_weights", "mixing_matrix", "mixing_row", "second_eigenvalue"]

WEIGHT_KINDS: tuple[str, ...] = get_args(WeightsKind)
"""Mixing-weight rules, as ``[topology] weights`` names them: Metropolis-Hastings ``1/(1 + max(d_i, d_j))``, uniform
``1/(d_i + 1)`` and max-degree ``1/(d_max + 1)`` on each edge, the rest on the node itself. Only ``uniform`` needs a
regular graph to be doubly stochastic."""

Edges = tuple[tuple[int, int], ...]


def check_weights(kind: str, degrees: Sequence[int], name: str) -> None:
    """Raise :class:`TopologyError` unless ``kind`` gives a graph of these degrees a doubly stochastic W.

    From the degrees alone, without building W: a launcher or a deployment of many nodes validates in
    linear time and memory, not 8·N² bytes. ``uniform`` on an irregular graph is refused because W
    would not be doubly stochastic, so gossip would converge to a degree-weighted mean instead of the mean.
    """
    if kind not in WEIGHT_KINDS:
        raise TopologyError(f"unknown weights {kind!r}; known: {', '.join(WEIGHT_KINDS)}")
    if kind == "uniform":
        lo, hi = min(degrees), max(degrees)
        if lo != hi:
            raise TopologyError(
                f"topology {name}: uniform weights need a regular graph (degrees range {lo}..{hi}); use 'metropolis' or 'max-degree'"
            )


def mixing_row(i: int, neighbours: Sequence[int], degrees: Sequence[int], kind: str) -> dict[int, float]:
    """Row ``i`` of W on its support (the neighbours of ``i`` and ``i`` itself), keyed by node id in order.

    From the degrees alone, the same numbers as ``mixing_matrix(...)[i]`` bit for bit (the self weight is
    one minus the same numpy sum over a row of N): every node needs its row, and a dense W is 8·N² bytes
    (800 MB per node process at 10 000 nodes). ``kind`` must have passed :func:`check_weights`.
    """
    if kind == "metropolis":
        weights = [1.0 / (1.0 + max(degrees[i], degrees[j])) for j in neighbours]
    else:  # max-degree, and uniform on a regular graph (checked): the two coincide
        weights = [1.0 / (1.0 + max(degrees))] * len(neighbours)
    row = np.zeros(len(degrees))
    row[list(neighbours)] = weights
    out = dict(zip(neighbours, weights, strict=True))
    out[i] = float(1.0 - row.sum())
    return {j: out[j] for j in sorted(out)}


@functools.lru_cache(maxsize=64)
def mixing_matrix(n: int, edges: Edges, kind: str) -> np.ndarray:
    """The N×N matrix W (float64, read-only) of the graph on ``0..n-1`` with ``edges`` (``u < v``, each once)."""
    u = np.fromiter((e[0] for e in edges), dtype=np.int64, count=len(edges))
    v = np.fromiter((e[1] for e in edges), dtype=np.int64, count=len(edges))
    deg = np.bincount(np.concatenate([u, v]), minlength=n)
    if kind == "metropolis":
        w = 1.0 / (1.0 + np.maximum(deg[u], deg[v]))
    else:  # max-degree, and uniform (the caller checked the graph is regular, so the two coincide)
        w = np.full(len(edges), 1.0 / (1.0 + deg.max()))
    matrix = np.zeros((n, n))
    matrix[u, v] = w
    matrix[v, u] = w
    # The self weight takes the rest, so every row sums to 1; symmetry then makes every column sum to 1.
    np.fill_diagonal(matrix, 1.0 - matrix.sum(axis=1))
    matrix.setflags(write=False)
    return matrix


@functools.lru_cache(maxsize=64)
def second_eigenvalue(n: int, edges: Edges, kind: str) -> float:
    """max_{k>=2} |lambda_k(W)|: one gossip step multiplies the distance to consensus by at most this."""
    if n == 1:
        return 0.0
    magnitudes = np.sort(np.abs(np.linalg.eigvalsh(mixing_matrix(n, edges, kind))))
    return float(magnitudes[-2])
