"""Regenerate the shipped topology files: ``python topologies/make.py`` (overwrites them, byte for byte).

Every file comes from a seeded generator in gossip.topology.generate, except wan-8.graphml, which is written out
by hand below because its edge attributes describe an imagined network, not a random one.
"""

from __future__ import annotations

import sys
from pathlib import Path

import networkx as nx

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))  # this checkout's gossip, even when the package is not installed

from gossip.topology import Topology, generate, save  # noqa: E402

# (file name, generator kind, n, params); seed 0 throughout.
GENERATED = [
    ("ring-16.edges", "ring", 16, {}),  # decentralizepy edges format
    ("ring-8.adjacency", "ring", 8, {}),  # decentralizepy adjacency format
    ("torus-4x4.graphml", "torus", 16, {"rows": 4, "cols": 4}),
    ("exponential-16.edgelist", "exponential", 16, {}),  # networkx edge list
    ("barabasi-albert-32.graphml", "barabasi-albert", 32, {"m": 2}),
    ("regular-16-d4.edgelist", "regular", 16, {"d": 4}),
]

# Two sites of four nodes (a LAN ring plus one chord each) joined by two long-haul links.
# (u, v, delay_ms, jitter_ms, loss, bandwidth_mbit)
WAN_LINKS = [
    *[(u, v, 1.0, 0.2, 0.0, 1000.0) for u, v in [(0, 1), (1, 2), (2, 3), (3, 0), (0, 2)]],
    *[(u, v, 2.0, 0.5, 0.001, 1000.0) for u, v in [(4, 5), (5, 6), (6, 7), (7, 4), (5, 7)]],
    (1, 5, 40.0, 5.0, 0.01, 100.0),
    (3, 7, 80.0, 10.0, 0.02, 50.0),
]
WAN_SITES = ["ams", "ams", "ams", "ams", "nyc", "nyc", "nyc", "nyc"]


def wan() -> Topology:
    """The wan-8 example: every edge carries the link-emulation attributes."""
    graph = nx.Graph()
    graph.add_nodes_from((i, {"site": site}) for i, site in enumerate(WAN_SITES))
    for u, v, delay, jitter, loss, bandwidth in WAN_LINKS:
        graph.add_edge(u, v, delay_ms=delay, jitter_ms=jitter, loss=loss, bandwidth_mbit=bandwidth)
    return Topology(graph, "wan-8")


def main(out_dir: Path = HERE) -> None:
    """Write every shipped file into ``out_dir`` (default: next to this script)."""
    for filename, kind, n, params in GENERATED:
        save(generate(kind, n, seed=0, **params), out_dir / filename)
    save(wan(), out_dir / "wan-8.graphml")


if __name__ == "__main__":
    main()
