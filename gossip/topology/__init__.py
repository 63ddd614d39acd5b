"""Who talks to whom: the communication graph, its mixing weights, and which neighbours a round uses.

- :mod:`~gossip.topology.graph`: :class:`Topology`, the validated, immutable graph over ``0..N-1``;
- :mod:`~gossip.topology.weights`: the mixing matrix W, its spectral gap, the weight rules a graph admits;
- :mod:`~gossip.topology.generate`: seeded generators and the spec strings that name them (or a file);
- :mod:`~gossip.topology.files`: load and save in every format, within fixed caps;
- :mod:`~gossip.topology.draw`: the text and the PNG a person reads (the only matplotlib import);
- :mod:`~gossip.topology.schedule`: which neighbours a node talks to in each round.

Importing this package imports neither NetworkX nor matplotlib: a node process that reads the launcher's
JSON topology needs neither.
"""

from __future__ import annotations

from gossip.topology.draw import DESCRIBE_MAX_NODES, describe, draw
from gossip.topology.files import JSON_FORMAT, MAX_DEPTH, MAX_FILE_BYTES, load, save
from gossip.topology.generate import KINDS, generate, parse_spec, topology_of
from gossip.topology.graph import MAX_EDGES, MAX_NODES, Topology
from gossip.topology.weights import WEIGHT_KINDS

__all__ = [
    "DESCRIBE_MAX_NODES",
    "JSON_FORMAT",
    "KINDS",
    "MAX_DEPTH",
    "MAX_EDGES",
    "MAX_FILE_BYTES",
    "MAX_NODES",
    "WEIGHT_KINDS",
    "Topology",
    "describe",
    "draw",
    "generate",
    "load",
    "parse_spec",
    "save",
    "topology_of",
]
