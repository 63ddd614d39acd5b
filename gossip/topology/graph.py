"""The communication graph as a value: who gossips with whom, validated once, immutable after.

A :class:`Topology` is a frozen, validated, undirected graph whose nodes are exactly ``0..N-1``. It comes
from a seeded generator (:mod:`gossip.topology.generate`), a file (:mod:`gossip.topology.files`) or a spec
string that names either. Every path goes through one validator, here, so a node never starts on a graph
with self loops, holes in its ids or a part it cannot reach. Its mixing weights are computed from the
graph alone (:mod:`gossip.topology.weights`): a node never takes a weight (or a degree) from a message.

A topology stores its graph as plain tuples (neighbours, edges, edge and node data), not as an
``nx.Graph``: importing NetworkX costs every process ~12 MiB, and a node process needs none of it. The
generators, GraphML and the text edge lists use NetworkX (imported on first use); the JSON format that
``gossip launch`` hands its nodes and :meth:`Topology.from_edges` do not. ``topology.graph`` builds a
frozen ``nx.Graph`` on first access, for analysis and drawing.

What the validator does to a graph, and why:

- directed graphs become undirected: D-SGD with Metropolis-Hastings weights needs a symmetric W;
- parallel edges collapse to one (their attributes merge, the last one's win);
- integer (or integer-string) node ids must be exactly ``0..N-1``; anything else is refused, because a
  silent renumbering would give a node another node's data shard;
- non-integer ids (GraphML names such as ``"paris"`` or ``"n7"``) are numbered in natural sorted order
  (``"n2"`` before ``"n10"``) and the original id is kept as the node attribute ``"label"``;
- self loops and disconnected graphs are refused. Every refusal is one :class:`TopologyError` line.

Every path is bounded before anything of that size is built: at most :data:`MAX_NODES` nodes and
:data:`MAX_EDGES` edges (a file, a spec such as ``torus:100000x100000``, a generator).
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Collection, Iterable, Mapping
from types import MappingProxyType
from typing import TYPE_CHECKING, Any

import numpy as np

from gossip.config import MAX_NODES as CONFIG_MAX_NODES
from gossip.errors import TopologyError
from gossip.ids import NodeId
from gossip.inputs import quote
from gossip.topology.checks import as_int, count_text, is_id, need, shown
from gossip.topology.weights import Edges, check_weights, mixing_matrix, mixing_row, second_eigenvalue

if TYPE_CHECKING:
    import networkx as nx

__all__ = ["MAX_EDGES", "MAX_NODES", "Topology", "networkx"]

MAX_NODES = CONFIG_MAX_NODES
"""Most nodes of any topology (``gossip.config.MAX_NODES``, the same bound as ``[run] nodes``). Each node is a process (or a container); the largest documented deployments are
thousands of nodes, and ``gossip simulate`` holds an N×N mixing matrix (1.2 GB at this many)."""
MAX_EDGES = 500_000
"""Most edges of any topology: the complete graph on 1 000 nodes (499 500), a degree of 100 at 10 000 nodes.
A loaded topology holds a few hundred bytes per edge, NetworkX (GraphML, text formats) about 1 KB."""

_Edge = tuple[int, int]
_EMPTY: Mapping[str, Any] = MappingProxyType({})


class Topology:
    """A validated, immutable graph over nodes ``0..N-1``. Equal (and hashed) by name and edge set.

    ``Topology(graph, name)`` takes any ``nx.Graph`` (directed, multi, string ids) and validates it;
    :meth:`from_edges` builds one from plain ids without NetworkX. Either way the result holds no
    ``nx.Graph`` until ``topology.graph`` is read, and every attribute is read-only, so a topology is
    safe to share between threads.
    """

    __slots__ = ("_adj", "_edge_data", "_edges", "_graph", "_node_data", "_order", "n", "name")
    name: str
    n: int  # number of nodes N; the ids are 0..N-1
    _adj: tuple[tuple[int, ...], ...]  # sorted neighbours of each node
    _edges: Edges  # every edge once, (u, v) with u < v, sorted
    _order: Edges  # the same edges in the order given: .graph (and GraphML) iterate them as NetworkX would
    _edge_data: Mapping[_Edge, Mapping[str, Any]]
    _node_data: tuple[Mapping[str, Any], ...]
    _graph: nx.Graph | None

    def __init__(self, graph: nx.Graph, name: str) -> None:
        import networkx as nx

        if not isinstance(graph, nx.Graph):
            raise TypeError(f"Topology needs an nx.Graph, got {type(graph).__name__}")
        where = f"topology {name}"
        need(graph.number_of_nodes() > 0, f"{where} has no nodes")
        _check_size(graph.number_of_nodes(), graph.number_of_edges(), where)
        graph = _int_labelled(graph, where)
        self._fill(name, graph.number_of_nodes(), graph.edges(data=True), {int(i): d for i, d in graph.nodes(data=True)})

    @classmethod
    def from_edges(
        cls,
        n: int,
        edges: Iterable[tuple[int, int] | tuple[int, int, Mapping[str, Any]]],
        name: str,
        node_data: Mapping[int, Mapping[str, Any]] | None = None,
    ) -> Topology:
        """A topology over ``0..n-1`` from ``(u, v)`` or ``(u, v, data)`` pairs, without NetworkX.

        Same validation as the constructor: ids outside ``0..n-1``, self loops and disconnected
        graphs are refused; ``(u, v)`` and ``(v, u)`` are one edge, whose data merge.
        """
        where = f"topology {name}"
        need(isinstance(n, int) and not isinstance(n, bool) and n > 0, f"{where} has no nodes")
        _check_size(n, 0, where)
        out = cls.__new__(cls)
        out._fill(name, n, edges, dict(node_data or {}))
        return out

    def _fill(self, name: str, n: int, edges: Iterable[Any], node_data: Mapping[int, Mapping[str, Any]]) -> None:
        where = f"topology {name}"
        merged: dict[_Edge, dict[str, Any]] = {}
        loops: set[int] = set()
        for edge in edges:
            u, v = (_node_id(x, n, where) for x in edge[:2])
            if u == v:
                loops.add(u)
            merged.setdefault((min(u, v), max(u, v)), {}).update(edge[2] if len(edge) > 2 else {})
            if len(merged) > MAX_EDGES:
                raise TopologyError(f"{where} has more than {MAX_EDGES:,} edges, the most gossip runs")
        if loops:
            more = f" (and {len(loops) - 1} more)" if len(loops) > 1 else ""
            raise TopologyError(f"{where}: self loop at node {min(loops)}{more}")
        unknown = sorted(set(node_data) - set(range(n)), key=str)
        need(not unknown, f"{where}: node data for {shown(unknown[0]) if unknown else ''}, which is not in 0..{n - 1}")
        adj: list[list[int]] = [[] for _ in range(n)]
        for u, v in merged:
            adj[u].append(v)
            adj[v].append(u)
        _connected(adj, where)
        put = object.__setattr__
        put(self, "name", name)
        put(self, "n", n)
        put(self, "_edges", tuple(sorted(merged)))
        put(self, "_order", tuple(merged))  # as given: .graph then iterates (and GraphML lists) edges as NetworkX would
        put(self, "_adj", tuple(tuple(sorted(a)) for a in adj))
        put(self, "_edge_data", MappingProxyType({e: MappingProxyType(d) for e, d in merged.items() if d}))
        put(self, "_node_data", tuple(MappingProxyType(dict(node_data.get(i, {}))) for i in range(n)))
        put(self, "_graph", None)

    def __setattr__(self, key: str, value: object) -> None:
        raise AttributeError(f"Topology is immutable: cannot set {key!r}")

    def __delattr__(self, key: str) -> None:
        raise AttributeError(f"Topology is immutable: cannot delete {key!r}")

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Topology):
            return NotImplemented
        return (self.name, self._edges) == (other.name, other._edges)

    def __hash__(self) -> int:
        return hash((self.name, self._edges))

    def __repr__(self) -> str:
        return f"Topology({self.name!r}, n={self.n}, edges={len(self._edges)})"

    def __reduce__(self) -> tuple[Any, ...]:
        # __slots__ and a refusing __setattr__: pickle (multiprocessing) rebuilds through from_edges
        edges = [(u, v, dict(self._edge_data.get((u, v), _EMPTY))) for u, v in self._order]
        return (_rebuild, (self.n, edges, self.name, {i: dict(d) for i, d in enumerate(self._node_data) if d}))

    @property
    def graph(self) -> nx.Graph:
        """The graph as a frozen ``nx.Graph`` (nodes 0..N-1 with their data, edges with theirs), built on first use."""
        if self._graph is None:
            import networkx as nx

            graph = nx.Graph()
            graph.add_nodes_from((i, dict(d)) for i, d in enumerate(self._node_data))
            graph.add_edges_from((u, v, dict(self._edge_data.get((u, v), _EMPTY))) for u, v in self._order)
            graph.graph["name"] = self.name
            object.__setattr__(self, "_graph", nx.freeze(graph))
        return self._graph

    @property
    def edges(self) -> list[tuple[NodeId, NodeId]]:
        """Every edge once, as ``(u, v)`` with ``u < v``, sorted."""
        return [(NodeId(u), NodeId(v)) for u, v in self._edges]

    def neighbours(self, i: int) -> tuple[NodeId, ...]:
        """The nodes ``i`` exchanges models with, sorted."""
        return tuple(NodeId(j) for j in self._adj[self._node(i)])

    def degree(self, i: int) -> int:
        """Number of neighbours of ``i``."""
        return len(self._adj[self._node(i)])

    def degrees(self) -> tuple[int, ...]:
        """Degree of every node, indexed by node id."""
        return tuple(len(a) for a in self._adj)

    def has_edge(self, u: int, v: int) -> bool:
        """Whether ``u`` and ``v`` are neighbours."""
        return v in self._adj[self._node(u)]

    def node_attributes(self, i: int) -> dict[str, object]:
        """A copy of the data on node ``i``, e.g. its GraphML name as ``"label"``."""
        return dict(self._node_data[self._node(i)])

    def mixing_matrix(self, kind: str = "metropolis") -> np.ndarray:
        """The N×N mixing matrix W (float64, read-only, cached per kind).

        Raises
        ------
        TopologyError
            ``kind`` is unknown, or ``"uniform"`` on an irregular graph (see :meth:`check_weights`).
        """
        self.check_weights(kind)
        return mixing_matrix(self.n, self._edges, kind)

    def check_weights(self, kind: str) -> None:
        """Raise :class:`TopologyError` unless ``kind`` gives this graph a doubly stochastic W, without building W."""
        check_weights(kind, self.degrees(), self.name)

    def mixing_weights(self, i: int, kind: str = "metropolis") -> dict[NodeId, float]:
        """Row ``i`` of W restricted to its support: the neighbours of ``i`` and ``i`` itself (no dense W)."""
        self.check_weights(kind)
        i = self._node(i)
        return {NodeId(j): w for j, w in mixing_row(i, self._adj[i], self.degrees(), kind).items()}

    def second_eigenvalue(self, kind: str = "metropolis") -> float:
        """max_{k>=2} |lambda_k(W)|: one gossip step multiplies the distance to consensus by at most this."""
        self.mixing_matrix(kind)  # validates kind
        return second_eigenvalue(self.n, self._edges, kind)

    def spectral_gap(self, kind: str = "metropolis") -> float:
        """1 - max_{k>=2} |lambda_k(W)|; small gaps mean slow consensus (the ring's shrinks as 1/N²)."""
        return 1.0 - self.second_eigenvalue(kind)

    def edge_attributes(self, u: int, v: int) -> dict[str, object]:
        """A copy of the data on edge (u, v), e.g. the link-emulation keys ``delay_ms`` or ``loss``."""
        if not (is_id(u, self.n) and is_id(v, self.n) and self.has_edge(u, v)):
            raise TopologyError(f"topology {self.name} has no edge ({u}, {v})")
        return dict(self._edge_data.get((min(u, v), max(u, v)), _EMPTY))

    def _node(self, i: int) -> int:
        if not is_id(i, self.n):
            raise TopologyError(f"node {i!r} is not in topology {self.name} (ids 0..{self.n - 1})")
        return int(i)


def _rebuild(n: int, edges: list[Any], name: str, node_data: dict[int, dict[str, Any]]) -> Topology:
    return Topology.from_edges(n, edges, name, node_data)


def networkx() -> Any:
    """NetworkX, imported on first use: generators, GraphML, text edge lists and drawing need it; nodes do not."""
    import networkx

    return networkx


def _node_id(x: object, n: int, where: str) -> int:
    if not is_id(x, n):
        raise TopologyError(f"{where}: node ids must be 0..{n - 1}: unexpected {shown(x)}")
    return int(x)


def _check_size(n: int, edges: int, where: str) -> None:
    """Refuse more than MAX_NODES nodes or MAX_EDGES edges, before anything proportional to them is built."""
    need(n <= MAX_NODES, f"{where} has {count_text(n)} nodes; gossip runs at most {MAX_NODES:,}")
    need(edges <= MAX_EDGES, f"{where} has {count_text(edges)} edges; gossip runs at most {MAX_EDGES:,}")


def _connected(adj: list[list[int]], where: str) -> None:
    """Refuse a graph with more than one component, naming two of them (the one gate every path passes)."""
    component = [-1] * len(adj)
    parts: list[list[int]] = []
    for start in range(len(adj)):
        if component[start] >= 0:
            continue
        part, stack = [start], [start]
        component[start] = len(parts)
        while stack:
            for j in adj[stack.pop()]:
                if component[j] < 0:
                    component[j] = len(parts)
                    part.append(j)
                    stack.append(j)
        parts.append(part)
    if len(parts) > 1:
        raise TopologyError(f"{where} is disconnected: {len(parts)} components, e.g. nodes {_brief(parts[0])} and {_brief(parts[1])}")


def _int_labelled(graph: nx.Graph, where: str) -> nx.Graph:
    labels = list(graph.nodes)
    ids = [i for i in (as_int(label, where) for label in labels) if i is not None]
    if len(ids) < len(labels):
        # Names, not numbers (GraphML from yEd or Gephi): number them in natural order, remember the name.
        order = sorted(labels, key=_natural)
        out = networkx().relabel_nodes(graph, {label: k for k, label in enumerate(order)})
        for k, label in enumerate(order):
            out.nodes[k]["label"] = str(label)
        return out
    n, have = len(ids), set(ids)
    if len(have) < n:
        dup = next(i for i, count in Counter(ids).items() if count > 1)
        spellings = " and ".join(quote(label) if isinstance(label, str) else repr(label) for label in labels if as_int(label, where) == dup)
        raise TopologyError(f"{where}: node id {dup} appears twice (as {spellings})")
    missing, unexpected = sorted(set(range(n)) - have), sorted(have - set(range(n)))
    if missing or unexpected:
        what = []
        if missing:
            what.append(f"missing {_few(missing)}")
        if unexpected:
            what.append(f"unexpected {_few(unexpected)}")
        raise TopologyError(f"{where}: node ids must be 0..{n - 1}: {', '.join(what)}")
    if all(type(label) is int for label in labels):
        return graph
    return networkx().relabel_nodes(graph, dict(zip(labels, ids, strict=True)))


def _natural(label: object) -> list[str | tuple[int, str]]:
    """Sort key that puts "n2" before "n10": digit runs compare as numbers (by length, then digits: no int() of a long run)."""
    parts = re.split(r"(\d+)", str(label))
    return [(len(part.lstrip("0")), part.lstrip("0")) if k % 2 else part for k, part in enumerate(parts)]


def _few(ids: list[int], shown: int = 5) -> str:
    more = f" (+{len(ids) - shown} more)" if len(ids) > shown else ""
    return ", ".join(map(str, ids[:shown])) + more


def _brief(nodes: Collection[int]) -> str:
    lo, hi = min(nodes), max(nodes)
    if hi - lo + 1 == len(nodes) and len(nodes) > 2:
        return f"{{{lo}..{hi}}}"
    first = sorted(nodes)[:4]
    return "{" + ", ".join(map(str, first)) + (", ...}" if len(nodes) > 4 else "}")
