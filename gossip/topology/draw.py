"""A topology for people: the text ``gossip topology show`` prints, and a PNG drawing (the only matplotlib user here)."""

from __future__ import annotations

import math
import re
from collections import Counter
from collections.abc import Collection, Mapping
from pathlib import Path

import numpy as np

from gossip.errors import TopologyError
from gossip.topology.graph import Topology, networkx

__all__ = ["DESCRIBE_MAX_NODES", "describe", "draw"]


DESCRIBE_MAX_NODES = 2_000
"""Largest topology whose diameter and spectrum :func:`describe` computes, and :func:`draw` lays out by
simulated springs: both cost O(N²) memory or worse in time (a dense eigendecomposition is O(N³)), so a
larger graph is described by its degrees and drawn on a circle."""


def describe(topology: Topology, kind: str = "metropolis") -> str:
    """Human-readable summary for ``gossip topology show``: size, degrees, diameter, weights, spectral gap
    (the last three only up to :data:`DESCRIBE_MAX_NODES` nodes)."""
    degrees = topology.degrees()
    counts = sorted(Counter(degrees).items())
    histogram = ", ".join(f"degree {d}: {c} node{'s' * (c != 1)}" for d, c in counts[:8])
    histogram += f", ... ({len(counts) - 8} more degrees)" * (len(counts) > 8)
    regular = min(degrees) == max(degrees)
    out = [
        f"topology      {topology.name}",
        f"nodes         {topology.n}",
        f"edges         {len(topology.edges)}",
        f"degree        min {min(degrees)}, mean {sum(degrees) / topology.n:.2f}, max {max(degrees)}"
        + (" (regular)" if regular else " (irregular)"),
        f"              {histogram}",
    ]
    large = topology.n > DESCRIBE_MAX_NODES
    skipped = f"not computed above {DESCRIBE_MAX_NODES:,} nodes"
    out.append(f"diameter      {skipped if large else networkx().diameter(topology.graph)}")
    attributed = [e for e in topology.edges if topology.edge_attributes(*e)]
    if attributed:
        keys = sorted({key for e in attributed for key in topology.edge_attributes(*e)})
        out.append(f"edge data     {', '.join(keys)} (on {len(attributed)} of {len(topology.edges)} edges)")
    try:
        topology.check_weights(kind)
    except TopologyError as exc:
        return "\n".join([*out, f"weights       {kind}: not usable: {exc}"])
    if large:
        return "\n".join([*out, f"weights       {kind}", f"spectral gap  {skipped} (dense N×N eigenvalues)"])
    matrix = topology.mixing_matrix(kind)
    symmetric = bool(np.allclose(matrix, matrix.T, atol=1e-12))
    doubly = bool(np.allclose(matrix.sum(axis=0), 1.0, atol=1e-12) and np.allclose(matrix.sum(axis=1), 1.0, atol=1e-12))
    facts = ", ".join(["symmetric" if symmetric else "NOT symmetric", "doubly stochastic" if doubly else "NOT doubly stochastic"])
    out += [
        f"weights       {kind} ({facts})",
        f"spectral gap  {topology.spectral_gap(kind):.4f} (second |eigenvalue| {topology.second_eigenvalue(kind):.4f})",
    ]
    return "\n".join(out)


def _layout(topology: Topology) -> tuple[dict[int, tuple[float, float]], bool]:
    """Node positions, and whether they form a torus grid (whose wrap-around edges are drawn as stubs)."""
    n, name = topology.n, topology.name
    grid = re.match(r"torus-(\d+)x(\d+)", name)
    if grid and int(grid[1]) * int(grid[2]) == n:
        cols = int(grid[2])
        return {i: (float(i % cols), -float(i // cols)) for i in range(n)}, True
    if name.startswith("star"):
        hub = max(range(n), key=topology.degree)
        rim = [i for i in range(n) if i != hub]
        angles = {j: 2 * math.pi * k / len(rim) for k, j in enumerate(rim)}
        return {hub: (0.0, 0.0)} | {j: (math.sin(a), math.cos(a)) for j, a in angles.items()}, False
    if len(set(topology.degrees())) == 1 or name.startswith(("ring", "exponential", "complete", "regular")) or n > DESCRIBE_MAX_NODES:
        return {i: (math.sin(2 * math.pi * i / n), math.cos(2 * math.pi * i / n)) for i in range(n)}, False
    pos = networkx().spring_layout(topology.graph, seed=0)
    return {int(i): (float(xy[0]), float(xy[1])) for i, xy in pos.items()}, False


def _segments(topology: Topology, pos: Mapping[int, tuple[float, float]], torus: bool) -> list[np.ndarray]:
    segments = []
    for u, v in topology.edges:
        a, b = np.array(pos[u]), np.array(pos[v])
        if torus and np.abs(b - a).max() > 1.5:
            # A wrap-around edge drawn straight would hide under its row or column: draw two outward stubs.
            step = np.sign(b - a) * 0.4
            segments += [np.array([a, a - step]), np.array([b, b + step])]
        else:
            segments.append(np.array([a, b]))
    return segments


def draw(
    topology: Topology,
    path: str | Path,
    node_values: Mapping[int, float] | None = None,
    title: str | None = None,
    highlight: Collection[int] = (),
) -> None:
    """Save a 600x600 PNG of the graph; ``node_values`` colours nodes (with a colorbar), ``highlight`` rings them red.

    Uses matplotlib's object-oriented API with an Agg canvas, so pyplot's global state is never touched.
    """
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.cm import ScalarMappable
    from matplotlib.collections import LineCollection
    from matplotlib.colors import Normalize
    from matplotlib.figure import Figure

    n, values = topology.n, dict(node_values or {})
    strangers = sorted(set(values) - set(range(n))) + sorted(set(highlight) - set(range(n)))
    if strangers:
        raise TopologyError(f"draw: node {strangers[0]} is not in topology {topology.name}")
    pos, torus = _layout(topology)
    xy = np.array([pos[i] for i in range(n)])
    fig = Figure(figsize=(6, 6), dpi=100)
    FigureCanvasAgg(fig)
    ax = fig.add_subplot()
    ax.add_collection(LineCollection(_segments(topology, pos, torus), colors="0.65", linewidths=1.0, zorder=1))
    face = np.tile((0.62, 0.79, 0.88, 1.0), (n, 1))  # light blue: no value for this node
    if values:
        shown = ScalarMappable(Normalize(min(values.values()), max(values.values())), cmap="viridis")
        face[list(values)] = shown.to_rgba(np.array(list(values.values()), dtype=float))
        fig.colorbar(shown, ax=ax, shrink=0.8)
    red = np.isin(np.arange(n), list(highlight))
    ax.scatter(
        xy[:, 0],
        xy[:, 1],
        c=face,
        s=320.0 if n <= 16 else max(20.0, 5000.0 / n),
        zorder=2,
        edgecolors=["tab:red" if r else "0.25" for r in red],
        linewidths=[2.5 if r else 0.8 for r in red],
    )
    if n <= 64:
        dark = face[:, :3] @ np.array([0.299, 0.587, 0.114]) < 0.5  # white text on dark nodes
        for i, (x, y) in enumerate(xy):
            ax.text(x, y, str(i), ha="center", va="center", fontsize=9 if n <= 16 else 6, zorder=3, color="white" if dark[i] else "black")
    ax.set_title(title or topology.name)
    ax.set_aspect("equal")
    ax.margins(0.08)
    ax.axis("off")
    fig.savefig(path, format="png")
