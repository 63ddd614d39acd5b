"""The neighbour graph of an open network over time, from its members' records: a few snapshots side by side.

In an open network (``[membership] enabled``) the graph is not a file: each member's record lists its
neighbours at that step. A snapshot at time t draws every member that has a record at or before t (and one
within the last few seconds: a member that left stops recording), with an edge wherever one lists another;
members are coloured by their latest evaluation, and the positions stay fixed across snapshots, so a person
sees members arrive, leave and the links heal.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import networkx as nx
import numpy as np

__all__ = ["SNAPSHOTS", "has_membership", "plot_membership", "snapshot"]

SNAPSHOTS = 4
RECENT_S = 3.0  # a member without a record this recent is taken to have left


def has_membership(records: Mapping[int, Sequence[Mapping[str, Any]]]) -> bool:
    """Whether these records come from an open network (each step lists its neighbours)."""
    return any(rs and isinstance(rs[-1].get("neighbours"), list) and "view" in rs[-1] for rs in records.values())


def snapshot(records: Mapping[int, Sequence[Mapping[str, Any]]], at: float) -> tuple[nx.Graph, dict[int, float]]:
    """The members live at ``at`` and the links they list, and each one's latest evaluation."""
    graph = nx.Graph()
    values: dict[int, float] = {}
    latest: dict[int, Mapping[str, Any]] = {}
    for i, rs in records.items():
        before = [r for r in rs if r["time"] <= at]
        if before and at - before[-1]["time"] <= RECENT_S:
            latest[i] = before[-1]
            graph.add_node(i)
            scored = [r["accuracy"] for r in before if isinstance(r.get("accuracy"), (int, float))]
            if scored and math.isfinite(scored[-1]):
                values[i] = float(scored[-1])
    for i, record in latest.items():
        graph.add_edges_from((i, j) for j in record.get("neighbours", []) if j in latest)
    return graph, values


def plot_membership(records: Mapping[int, Sequence[Mapping[str, Any]]], path: Path, metric: str = "accuracy") -> None:
    """Save ``SNAPSHOTS`` snapshots of the neighbour graph, evenly spaced over the run, as one PNG."""
    from matplotlib import patheffects
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    halo = patheffects.withStroke(linewidth=2, foreground="white")  # a label readable on any colour of the map
    times = [r["time"] for rs in records.values() for r in rs]
    start, end = min(times), max(times)
    moments = [start + (end - start) * (k + 1) / SNAPSHOTS for k in range(SNAPSHOTS)]
    everyone = nx.Graph()
    shots = [snapshot(records, t) for t in moments]
    for graph, _values in shots:
        everyone.add_nodes_from(graph.nodes)
        everyone.add_edges_from(graph.edges)
    pos = nx.spring_layout(everyone, seed=0) if everyone.number_of_nodes() else {}
    fig = Figure(figsize=(4.0 * SNAPSHOTS, 4.4), dpi=100, layout="constrained")
    FigureCanvasAgg(fig)
    scores = [v for _g, values in shots for v in values.values()]
    lo, hi = (min(scores), max(scores)) if scores else (0.0, 1.0)
    for k, ((graph, values), t) in enumerate(zip(shots, moments, strict=True)):
        ax = fig.add_subplot(1, SNAPSHOTS, k + 1)
        ax.set_axis_off()
        connected = graph.number_of_nodes() > 0 and nx.is_connected(graph)
        ax.set_title(
            f"t = {t - start:.0f} s: {graph.number_of_nodes()} members, {'connected' if connected else 'NOT connected'}", fontsize=9
        )
        for i, j in graph.edges:
            ax.plot([pos[i][0], pos[j][0]], [pos[i][1], pos[j][1]], color="0.65", linewidth=0.8, zorder=1)
        nodes = sorted(graph.nodes)
        if nodes:
            xy = np.array([pos[i] for i in nodes])
            colour = [values.get(i, lo) for i in nodes]
            ax.scatter(xy[:, 0], xy[:, 1], c=colour, cmap="viridis", vmin=lo, vmax=hi, s=140, zorder=2, edgecolors="black", linewidths=0.5)
            for i, (x, y) in zip(nodes, xy, strict=True):
                ax.annotate(str(i), (x, y), ha="center", va="center", fontsize=7, zorder=3, path_effects=[halo])
    fig.suptitle(f"open network: neighbour graph over time (members coloured by test {metric})")
    fig.savefig(path, format="png")
