"""The communication graph: who gossips with whom, and the mixing weights every node derives from it.

A :class:`Topology` is a frozen, validated, undirected graph whose nodes are exactly ``0..N-1``. It comes
from a seeded generator (:func:`generate`), a file (:func:`load`) or a spec string that names either
(:func:`parse_spec`). Every path goes through one validator, so a node never starts on a graph with self
loops, holes in its ids or a part it cannot reach. Mixing weights are computed here from the graph alone:
a node never takes a weight (or a degree) from a message.

A topology stores its graph as plain tuples (neighbours, edges, edge and node data), not as an
``nx.Graph``: importing NetworkX costs every process ~12 MiB, and a node process needs none of it. The
generators, GraphML and the text edge lists use NetworkX (imported on first use); the JSON format that
``gossip launch`` hands its nodes (:func:`save` / :func:`load` of ``.json``) and :meth:`Topology.from_edges`
do not. ``topology.graph`` builds a frozen ``nx.Graph`` on first access, for analysis and drawing.

What the validator does to a graph, and why:

- directed graphs become undirected: D-SGD with Metropolis-Hastings weights needs a symmetric W;
- parallel edges collapse to one (their attributes merge, the last one's win);
- integer (or integer-string) node ids must be exactly ``0..N-1``; anything else is refused, because a
  silent renumbering would give a node another node's data shard;
- non-integer ids (GraphML names such as ``"paris"`` or ``"n7"``) are numbered in natural sorted order
  (``"n2"`` before ``"n10"``) and the original id is kept as the node attribute ``"label"``;
- self loops and disconnected graphs are refused. Every refusal is one :class:`TopologyError` line.

Every size is bounded before anything of that size is built: at most :data:`MAX_NODES` nodes and
:data:`MAX_EDGES` edges from any path (a file, a spec such as ``torus:100000x100000``, a generator), and a
file is read only if it is a regular file of at most :data:`MAX_FILE_BYTES`, whose structure (JSON
nesting and values, XML elements and depth, text lines, edge-data literals) is within the caps below. So
a hostile or mistaken file costs one line, never a traceback, an exhausted memory or a hang.

Text formats and how :func:`load` tells them apart are documented in ``topologies/README.md``.
"""

from __future__ import annotations

import ast
import difflib
import functools
import io
import json
import math
import re
from collections import Counter
from collections.abc import Callable, Collection, Iterable, Mapping
from pathlib import Path
from types import MappingProxyType
from typing import TYPE_CHECKING, Any

import numpy as np

from gossip.config import MAX_NODES as CONFIG_MAX_NODES
from gossip.errors import TopologyError
from gossip.ids import NodeId
from gossip.inputs import clip, load_json, quote, read_capped, size_text

if TYPE_CHECKING:
    import networkx as nx

    from gossip.config import RunConfig

__all__ = [
    "DESCRIBE_MAX_NODES",
    "KINDS",
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

WEIGHT_KINDS = ("metropolis", "uniform", "max-degree")
"""Mixing-weight rules (REFERENCES §1.2). Only ``uniform`` needs a regular graph to be doubly stochastic."""

_FILE_SUFFIXES = frozenset({".graphml", ".json", ".edges", ".edgelist", ".txt", ".adjacency", ".adj"})
JSON_FORMAT = 1
"""Version of the JSON topology format (the ``gossip_topology`` key); see ``topologies/README.md``."""

MAX_NODES = CONFIG_MAX_NODES
"""Most nodes of any topology (``gossip.config.MAX_NODES``, the same bound as ``[run] nodes``). Each node is a process (or a container); the README's largest deployments are
thousands of nodes, and ``gossip simulate`` holds an N×N mixing matrix (1.2 GB at this many)."""
MAX_EDGES = 500_000
"""Most edges of any topology: the complete graph on 1 000 nodes (499 500), a degree of 100 at 10 000 nodes.
A loaded topology holds a few hundred bytes per edge, NetworkX (GraphML, text formats) about 1 KB."""
MAX_FILE_BYTES = 64 << 20
"""Largest topology file read: the JSON of :data:`MAX_EDGES` edges, each with the four link attributes, fits."""
MAX_DEPTH = 32
"""Deepest nesting of a JSON or GraphML topology file (the formats need 4 and 5 levels; edge data may nest lists)."""
_MAX_JSON_VALUES = 8 * MAX_EDGES  # containers and commas: [u, v, {4 link attributes}] is 7
_MAX_XML_ELEMENTS = 6 * MAX_EDGES  # <edge> with four <data> children is 5; ~100 bytes each in the tree NetworkX parses
_MAX_TEXT_LINES = 2 * MAX_EDGES + MAX_NODES + 1_000  # decentralizepy lists each edge twice; comment lines count too
_MAX_LINE_CHARS = 1 << 16  # an adjacency line lists up to MAX_NODES - 1 ids
_MAX_EDGE_DATA_CHARS = 1_000  # "{...}" after "u v" in a NetworkX edge list
_MAX_EDGE_DATA_DEPTH = 8
_MAX_ID_DIGITS = 18  # an id with more digits is outside 0..MAX_NODES-1 anyway; int() of 4300+ digits raises
_ID_LIMIT = 10**_MAX_ID_DIGITS
_NAME = re.compile(r"[^\s./\\][^/\\\x00-\x1f\x7f]{0,63}")  # a name from a file names the run directory

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

    def __init__(self, graph: nx.Graph, name: str) -> None:
        import networkx as nx

        if not isinstance(graph, nx.Graph):
            raise TypeError(f"Topology needs an nx.Graph, got {type(graph).__name__}")
        where = f"topology {name}"
        _need(graph.number_of_nodes() > 0, f"{where} has no nodes")
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
        _need(isinstance(n, int) and not isinstance(n, bool) and n > 0, f"{where} has no nodes")
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
        _need(not unknown, f"{where}: node data for {_shown(unknown[0]) if unknown else ''}, which is not in 0..{n - 1}")
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
            ``kind`` is unknown, or ``"uniform"`` on an irregular graph (W would not be doubly stochastic,
            so gossip would converge to a degree-weighted mean instead of the mean).
        """
        self.check_weights(kind)
        return _mixing_matrix(self.n, self._edges, kind)

    def check_weights(self, kind: str) -> None:
        """Raise :class:`TopologyError` unless ``kind`` gives this graph a doubly stochastic W (see :meth:`mixing_matrix`).

        Without building W: a launcher or a deployment of many nodes validates in linear time and memory, not 8·N² bytes.
        """
        if kind not in WEIGHT_KINDS:
            raise TopologyError(f"unknown weights {kind!r}; known: {', '.join(WEIGHT_KINDS)}")
        if kind == "uniform":
            lo, hi = min(self.degrees()), max(self.degrees())
            if lo != hi:
                raise TopologyError(
                    f"topology {self.name}: uniform weights need a regular graph (degrees range {lo}..{hi}); "
                    "use 'metropolis' or 'max-degree'"
                )

    def mixing_weights(self, i: int, kind: str = "metropolis") -> dict[NodeId, float]:
        """Row ``i`` of W restricted to its support: the neighbours of ``i`` and ``i`` itself.

        Computed from the degrees alone, the same numbers as ``mixing_matrix(kind)[i]`` bit for bit (the
        self weight is one minus the same numpy sum over a row of N): every node needs its row, and a
        dense W is 8·N² bytes (800 MB per node process at 10 000 nodes).
        """
        self.check_weights(kind)
        i = self._node(i)
        neighbours = self._adj[i]
        degrees = self.degrees()
        if kind == "metropolis":
            weights = [1.0 / (1.0 + max(degrees[i], degrees[j])) for j in neighbours]
        else:  # max-degree, and uniform on a regular graph (checked): the two coincide
            weights = [1.0 / (1.0 + max(degrees))] * len(neighbours)
        row = np.zeros(self.n)
        row[list(neighbours)] = weights
        out = {NodeId(j): w for j, w in zip(neighbours, weights, strict=True)}
        out[NodeId(i)] = float(1.0 - row.sum())
        return {j: out[j] for j in sorted(out)}

    def second_eigenvalue(self, kind: str = "metropolis") -> float:
        """max_{k>=2} |lambda_k(W)|: one gossip step multiplies the distance to consensus by at most this."""
        self.mixing_matrix(kind)  # validates kind
        return _second_eigenvalue(self.n, self._edges, kind)

    def spectral_gap(self, kind: str = "metropolis") -> float:
        """1 - max_{k>=2} |lambda_k(W)|; small gaps mean slow consensus (the ring's shrinks as 1/N²)."""
        return 1.0 - self.second_eigenvalue(kind)

    def edge_attributes(self, u: int, v: int) -> dict[str, object]:
        """A copy of the data on edge (u, v), e.g. the link-emulation keys ``delay_ms`` or ``loss``."""
        if not (_is_id(u, self.n) and _is_id(v, self.n) and self.has_edge(u, v)):
            raise TopologyError(f"topology {self.name} has no edge ({u}, {v})")
        return dict(self._edge_data.get((min(u, v), max(u, v)), _EMPTY))

    def _node(self, i: int) -> int:
        if not _is_id(i, self.n):
            raise TopologyError(f"node {i!r} is not in topology {self.name} (ids 0..{self.n - 1})")
        return int(i)


def _rebuild(n: int, edges: list[Any], name: str, node_data: dict[int, dict[str, Any]]) -> Topology:
    return Topology.from_edges(n, edges, name, node_data)


# --- validation ---------------------------------------------------------------------------------------


def _nx() -> Any:
    """NetworkX, imported on first use: generators, GraphML, text edge lists and drawing need it; nodes do not."""
    import networkx

    return networkx


def _is_id(i: object, n: int) -> bool:
    return isinstance(i, int | np.integer) and not isinstance(i, bool) and 0 <= i < n


def _node_id(x: object, n: int, where: str) -> int:
    if not _is_id(x, n):
        raise TopologyError(f"{where}: node ids must be 0..{n - 1}: unexpected {_shown(x)}")
    return int(x)  # type: ignore[call-overload]


def _check_size(n: int, edges: int, where: str) -> None:
    """Refuse more than MAX_NODES nodes or MAX_EDGES edges, before anything proportional to them is built."""
    _need(n <= MAX_NODES, f"{where} has {_count(n)} nodes; gossip runs at most {MAX_NODES:,}")
    _need(edges <= MAX_EDGES, f"{where} has {_count(edges)} edges; gossip runs at most {MAX_EDGES:,}")


def _count(k: int) -> str:
    """``12,345``, or ``a 31-digit number``: a number as a message shows it (str() of a huge int is long, or raises)."""
    if abs(k) < _ID_LIMIT:
        return f"{k:,}"
    if k.bit_length() <= 13_000:  # under int()'s 4300-digit limit for str
        return f"a {len(str(abs(k)))}-digit number"
    return f"a number of about {int(k.bit_length() * math.log10(2))} digits"


def _shown(x: object) -> str:
    """A value from a file as a message quotes it: short, whatever its type and size."""
    if isinstance(x, int | np.integer) and not isinstance(x, bool):
        return _count(int(x))
    if isinstance(x, str):
        return quote(x)
    if x is None or isinstance(x, bool | float):
        return repr(x)
    return f"a {type(x).__name__}"


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
    ids = [i for i in (_as_int(label, where) for label in labels) if i is not None]
    if len(ids) < len(labels):
        # Names, not numbers (GraphML from yEd or Gephi): number them in natural order, remember the name.
        order = sorted(labels, key=_natural)
        out = _nx().relabel_nodes(graph, {label: k for k, label in enumerate(order)})
        for k, label in enumerate(order):
            out.nodes[k]["label"] = str(label)
        return out
    n, have = len(ids), set(ids)
    if len(have) < n:
        dup = next(i for i, count in Counter(ids).items() if count > 1)
        spellings = " and ".join(
            quote(label) if isinstance(label, str) else repr(label) for label in labels if _as_int(label, where) == dup
        )
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
    return _nx().relabel_nodes(graph, dict(zip(labels, ids, strict=True)))


def _natural(label: object) -> list[str | tuple[int, str]]:
    """Sort key that puts "n2" before "n10": digit runs compare as numbers (by length, then digits: no int() of a long run)."""
    parts = re.split(r"(\d+)", str(label))
    return [(len(part.lstrip("0")), part.lstrip("0")) if k % 2 else part for k, part in enumerate(parts)]


def _as_int(label: object, where: str) -> int | None:
    """An integer id (``3``, ``"3"``, ``" +3 "``), or None for a name. Ids of many digits are refused, not parsed."""
    if isinstance(label, int | np.integer) and not isinstance(label, bool):
        return int(label)
    if isinstance(label, str) and (digits := re.fullmatch(r"\s*[+-]?0*(\d+)\s*", label)):
        if len(digits[1]) > _MAX_ID_DIGITS:
            raise TopologyError(
                f"{where}: node id {quote(label.strip(), 30)} has {len(digits[1]):,} digits; ids are 0..{MAX_NODES - 1:,} at most"
            )
        return int(label)
    return None


def _few(ids: list[int], shown: int = 5) -> str:
    more = f" (+{len(ids) - shown} more)" if len(ids) > shown else ""
    return ", ".join(map(str, ids[:shown])) + more


def _brief(nodes: Collection[int]) -> str:
    lo, hi = min(nodes), max(nodes)
    if hi - lo + 1 == len(nodes) and len(nodes) > 2:
        return f"{{{lo}..{hi}}}"
    first = sorted(nodes)[:4]
    return "{" + ", ".join(map(str, first)) + (", ...}" if len(nodes) > 4 else "}")


# --- mixing matrices (pure, cached on the edge set) ----------------------------------------------------


@functools.lru_cache(maxsize=64)
def _mixing_matrix(n: int, edges: tuple[tuple[int, int], ...], kind: str) -> np.ndarray:
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
def _second_eigenvalue(n: int, edges: tuple[tuple[int, int], ...], kind: str) -> float:
    if n == 1:
        return 0.0
    magnitudes = np.sort(np.abs(np.linalg.eigvalsh(_mixing_matrix(n, edges, kind))))
    return float(magnitudes[-2])


# --- generators ----------------------------------------------------------------------------------------


def _need(ok: bool, message: str) -> None:
    if not ok:
        raise TopologyError(message)


def _connected_sample(make: Callable[[int], nx.Graph], seed: int, what: str) -> nx.Graph:
    # Seeds seed, seed+1, ...: deterministic for a given seed, and never a disconnected graph.
    for k in range(100):
        graph = make(seed + k)
        if _nx().is_connected(graph):
            return graph
    raise TopologyError(f"{what}: no connected graph in 100 seeds from {seed}; use a denser setting")


def _ring(n: int, seed: int) -> tuple[nx.Graph, str]:
    _need(n >= 3, f"ring needs n >= 3, got {n}")
    return _nx().cycle_graph(n), f"ring-{n}"


def _torus(n: int, seed: int, rows: int | None = None, cols: int | None = None) -> tuple[nx.Graph, str]:
    rows, cols = _torus_shape(n, rows, cols)
    grid = _nx().grid_2d_graph(rows, cols, periodic=True)  # rows or cols of 2 would need parallel edges
    return _nx().convert_node_labels_to_integers(grid, ordering="sorted"), f"torus-{rows}x{cols}"


def _torus_shape(n: int, rows: int | None, cols: int | None) -> tuple[int, int]:
    hint = "torus needs n = rows*cols with rows, cols >= 3 (e.g. 16 -> 4x4)"
    if rows is None and cols is None:
        rows = next((r for r in range(math.isqrt(n), 2, -1) if n % r == 0 and n // r >= 3), None)
        if rows is None:
            raise TopologyError(f"{hint}; {n} has no such factorisation")
    if rows is not None and cols is None:
        _need(rows > 0 and n % rows == 0, f"{hint}; {n} is not a multiple of rows={rows}")
        cols = n // rows
    elif cols is not None and rows is None:
        _need(cols > 0 and n % cols == 0, f"{hint}; {n} is not a multiple of cols={cols}")
        rows = n // cols
    if rows is None or cols is None:  # unreachable: every branch above fixed both
        raise TopologyError(hint)
    _need(rows * cols == n, f"torus {rows}x{cols} has {rows * cols} nodes, not {n}")
    _need(rows >= 3 and cols >= 3, f"{hint}; got {rows}x{cols}")
    return rows, cols


def _complete(n: int, seed: int) -> tuple[nx.Graph, str]:
    return _nx().complete_graph(n), f"complete-{n}"


def _star(n: int, seed: int) -> tuple[nx.Graph, str]:
    return _nx().star_graph(n - 1), f"star-{n}"  # node 0 is the hub: the federated-learning reference


def _erdos_renyi(n: int, seed: int, p: float | None = None) -> tuple[nx.Graph, str]:
    p = min(1.0, 2.0 * math.log(n) / n) if p is None else p
    _need(0.0 < p <= 1.0, f"erdos-renyi needs 0 < p <= 1, got {p}")
    graph = _connected_sample(lambda s: _nx().gnp_random_graph(n, p, seed=s), seed, f"erdos-renyi n={n} p={p:g}")
    return graph, f"erdos-renyi-{n}-p{p:.3g}"


def _barabasi_albert(n: int, seed: int, m: int = 2) -> tuple[nx.Graph, str]:
    _need(1 <= m < n, f"barabasi-albert needs 1 <= m < n, got m={m}, n={n}")
    return _nx().barabasi_albert_graph(n, m, seed=seed), f"barabasi-albert-{n}-m{m}"


def _exponential(n: int, seed: int) -> tuple[nx.Graph, str]:
    # Ying et al. 2021's static exponential graph, made undirected: i ~ i + 2^k (mod n), k < ceil(log2 n).
    graph = _nx().empty_graph(n)
    graph.add_edges_from((i, (i + 2**k) % n) for i in range(n) for k in range(math.ceil(math.log2(n))))
    return graph, f"exponential-{n}"


def _regular(n: int, seed: int, d: int = 4) -> tuple[nx.Graph, str]:
    _need(2 <= d < n and n * d % 2 == 0, f"regular needs 2 <= d < n and n*d even, got n={n}, d={d}")
    graph = _connected_sample(lambda s: _nx().random_regular_graph(d, n, seed=s), seed, f"regular n={n} d={d}")
    return graph, f"regular-{n}-d{d}"


_Generator = Callable[..., "tuple[nx.Graph, str]"]
_GENERATORS: Mapping[str, tuple[_Generator, Mapping[str, type]]] = MappingProxyType(
    {
        "ring": (_ring, {}),
        "torus": (_torus, {"rows": int, "cols": int}),
        "complete": (_complete, {}),
        "star": (_star, {}),
        "erdos-renyi": (_erdos_renyi, {"p": float}),
        "barabasi-albert": (_barabasi_albert, {"m": int}),
        "exponential": (_exponential, {}),
        "regular": (_regular, {"d": int}),
    }
)
_ALIASES: Mapping[str, str] = MappingProxyType({"er": "erdos-renyi", "ba": "barabasi-albert", "exp": "exponential"})
KINDS = tuple(_GENERATORS)
"""Generator names accepted by :func:`generate` and :func:`parse_spec` (plus the aliases er, ba, exp)."""


def _kind(text: str) -> str:
    kind = _ALIASES.get(text.strip().lower(), text.strip().lower())
    if kind in _GENERATORS:
        return kind
    close = difflib.get_close_matches(kind[:40], [*_GENERATORS, *_ALIASES], n=1)
    hint = f" (did you mean {close[0]!r}?)" if close else ""
    alias_of = {full: alias for alias, full in _ALIASES.items()}
    known = ", ".join(f"{k} ({alias_of[k]})" if k in alias_of else k for k in _GENERATORS)
    raise TopologyError(f"unknown topology {quote(text)}{hint}; known: {known}, or a path to a file")


def generate(kind: str, n: int, seed: int = 0, **params: float) -> Topology:
    """Build a seeded topology: same (kind, n, seed, params) → same graph.

    Kinds: ring, torus (rows, cols), complete, star, erdos-renyi / er (p), barabasi-albert / ba (m),
    exponential / exp, regular (d). Random kinds retry with seed+1, seed+2, ... until connected.
    ``n`` is at most :data:`MAX_NODES`, and a graph that would have more than :data:`MAX_EDGES` edges
    (``complete`` beyond 1 000 nodes, a dense ``er``) is refused before it is built.
    """
    name = _kind(kind)
    make, schema = _GENERATORS[name]
    unknown = sorted(set(params) - set(schema))
    if unknown:
        raise TopologyError(f"topology {name!r} has no parameter {quote(unknown[0])}; it takes {', '.join(schema) or 'none'}")
    _need(isinstance(n, int) and not isinstance(n, bool) and n >= 2, f"topology {name!r} needs at least 2 nodes, got {_shown(n)}")
    _need(n <= MAX_NODES, f"topology {name!r}: {_count(n)} nodes; gossip runs at most {MAX_NODES:,}")
    args = {key: _param(name, key, value, schema[key]) for key, value in params.items()}
    edges = _edge_estimate(name, n, args)
    _need(edges <= MAX_EDGES, f"topology {name!r} on {n:,} nodes would have about {edges:,.0f} edges; gossip runs at most {MAX_EDGES:,}")
    graph, label = make(n, seed, **args)
    return Topology(graph, label)


def _param(kind: str, key: str, value: object, want: type) -> int | float:
    """A generator parameter as ``want``: a finite number, and for an int a whole one in 1..MAX_NODES."""
    ok = isinstance(value, int | float | np.integer | np.floating) and not isinstance(value, bool)
    _need(ok, f"topology {kind!r}: {key} must be a number, got {_shown(value)}")
    if want is int:
        is_whole = isinstance(value, int | np.integer) or (math.isfinite(value) and float(value).is_integer())  # type: ignore[arg-type]
        _need(is_whole, f"topology {kind!r}: {key} must be an integer, got {_shown(value)}")
        number = int(value)  # type: ignore[arg-type]
        _need(1 <= number <= MAX_NODES, f"topology {kind!r}: {key} must be in 1..{MAX_NODES:,}, got {_count(number)}")
        return number
    _need(isinstance(value, int | np.integer) or math.isfinite(value), f"topology {kind!r}: {key} must be finite, got {value}")  # type: ignore[arg-type]
    try:
        return float(value)  # type: ignore[arg-type]
    except OverflowError:
        raise TopologyError(f"topology {kind!r}: {key} = {_count(int(value))} is out of range") from None  # type: ignore[call-overload]


def _edge_estimate(kind: str, n: int, args: Mapping[str, Any]) -> float:
    """How many edges ``kind`` builds on ``n`` nodes (expected, for er): refused above MAX_EDGES before building."""
    if kind == "complete":
        return n * (n - 1) / 2
    if kind == "erdos-renyi":
        p = args.get("p", min(1.0, 2.0 * math.log(n) / n))
        return max(0.0, min(p, 1.0)) * n * (n - 1) / 2
    if kind == "barabasi-albert":
        return args.get("m", 2) * n
    if kind == "regular":
        return args.get("d", 4) * n / 2
    if kind == "exponential":
        return n * math.ceil(math.log2(n))
    return 2 * n  # ring, torus, star


def parse_spec(spec: str, n: int | None = None, seed: int = 0) -> Topology:
    """A topology from a spec: a file path, or ``kind[:params]``.

    Forms: ``ring``, ``complete``, ``star``, ``exponential``, ``torus`` (most square rows x cols),
    ``torus:4x4`` (N may be omitted), ``er:p=0.3``, ``ba:m=2``, ``regular:d=4``, ``torus:rows=3,cols=6``.
    Generators need ``n``; a file fixes N itself, and a different ``n`` is refused rather than ignored.
    """
    text = spec.strip()
    _need(bool(text), "topology spec is empty")
    path = Path(text).expanduser()
    looks_like_path = "/" in text or path.suffix.lower() in _FILE_SUFFIXES
    try:
        is_file, exists = path.is_file(), looks_like_path and path.exists()
    except OSError:  # a name too long for the file system is not a file (and is refused below as a spec)
        is_file = exists = False
    if is_file or exists:  # load() says what is wrong with a directory, a FIFO or a device
        return _sized(load(path), n, path.name)
    if looks_like_path:
        raise TopologyError(f"topology file not found: {clip(text)}")
    kind_text, _, arg_text = text.partition(":")
    kind = _kind(kind_text)
    params = _parse_params(kind, arg_text.strip())
    if n is None:
        _need("rows" in params and "cols" in params, f"topology {quote(kind_text)} needs --nodes")
        n = int(_param(kind, "rows", params["rows"], int)) * int(_param(kind, "cols", params["cols"], int))
    return generate(kind, n, seed, **params)


def topology_of(cfg: RunConfig) -> Topology:
    """The graph ``cfg`` names: its ``[topology] spec`` at ``[run] nodes`` (0: the file's own N) and ``[run] seed``."""
    return parse_spec(cfg.topology.spec, n=cfg.run.nodes or None, seed=cfg.run.seed)


def _parse_params(kind: str, text: str) -> dict[str, float]:
    if not text:
        return {}
    grid = re.fullmatch(r"(\d+)\s*[xX]\s*(\d+)", text)
    if kind == "torus" and grid:
        for key, digits in zip(("rows", "cols"), grid.groups(), strict=True):  # int() refuses 4300+ digits
            _need(len(digits) <= _MAX_ID_DIGITS, f"topology 'torus': {key} has {len(digits):,} digits; it must be in 1..{MAX_NODES:,}")
        return {"rows": int(grid[1]), "cols": int(grid[2])}
    schema = _GENERATORS[kind][1]
    _need(bool(schema), f"topology {kind!r} takes no parameters, got {quote(text)}")
    params: dict[str, float] = {}
    for item in filter(None, (part.strip() for part in text.split(","))):
        key, eq, value = (s.strip() for s in item.partition("="))
        if not (eq and key and value):
            form = "rows x cols (4x4) or " * (kind == "torus") + f"key=value with key in {', '.join(schema)}"
            raise TopologyError(f"topology {kind!r}: cannot parse {quote(item)}; write {form}")
        try:
            params[key] = float(value)
        except ValueError:
            raise TopologyError(f"topology {kind!r}: {clip(key, 40)} must be a number, got {quote(value)}") from None
    return params


def _sized(topology: Topology, n: int | None, filename: str) -> Topology:
    if n is None or n == topology.n:
        return topology
    relation = "larger" if n > topology.n else "smaller"
    raise TopologyError(f"--nodes {n} is {relation} than topology file {filename} ({topology.n} nodes)")


# --- files ---------------------------------------------------------------------------------------------


def load(path: str | Path) -> Topology:
    """Read gossip's JSON, GraphML or one of three text edge formats (see ``topologies/README.md``).

    JSON is chosen by the ``.json`` suffix or a leading ``{`` and read without NetworkX (what node
    processes get); GraphML by the ``.graphml`` suffix or a leading ``<``; anything else is parsed as
    text and its format is detected from the content. The topology is named after the JSON ``name`` or
    the GraphML graph's ``name`` attribute when it has one (:func:`save` writes both), else after the
    file stem. Only a regular file of at most :data:`MAX_FILE_BYTES` is read.
    """
    path = Path(path)
    data = read_capped(path, MAX_FILE_BYTES, TopologyError, "topology file")
    if path.suffix.lower() == ".json" or data.lstrip().startswith(b"{"):
        return _from_json(data, path)
    if path.suffix.lower() == ".graphml" or data.lstrip().startswith(b"<"):
        graph = _read_graphml(data, path.name)
        name = graph.graph.get("name")
        if isinstance(name, str) and name.strip():
            return Topology(graph, _file_name(name, path.name, "the graph's name"))
    else:
        try:
            text = data.decode("utf-8")
        except UnicodeDecodeError:
            raise TopologyError(f"cannot read {path.name}: not a text edge list or GraphML file") from None
        graph = _parse_text(text, path.name)
    return Topology(graph, path.stem)


def _file_name(name: str, filename: str, what: str) -> str:
    """A topology name read from a file: it names the run directory, so no path separators, at most 64 characters."""
    name = name.strip()
    rule = "at most 64 characters, no / or \\ or control characters, not starting with '.'"
    _need(bool(_NAME.fullmatch(name)), f"{filename}: {what} {quote(name)} cannot name a run directory ({rule})")
    return name


def _read_graphml(data: bytes, filename: str) -> nx.Graph:
    """NetworkX's GraphML reader, after an expat pass that bounds what it would build.

    ``read_graphml`` holds the whole element tree (about 100 bytes an element) and recurses into nested
    graphs, and XML can declare entities that expand a small file into gigabytes. So the document is
    first streamed through expat with no tree: more than ``_MAX_XML_ELEMENTS`` elements, nesting deeper
    than :data:`MAX_DEPTH`, or any DOCTYPE entity declaration is refused before NetworkX sees the file.
    """
    import xml.etree.ElementTree as ET
    from xml.parsers import expat

    class Refused(Exception):
        pass

    depth = elements = 0

    def start(tag: str, attrs: object) -> None:
        nonlocal depth, elements
        depth += 1
        elements += 1
        if depth > MAX_DEPTH:
            raise Refused(f"elements nested deeper than {MAX_DEPTH}")
        if elements > _MAX_XML_ELEMENTS:
            raise Refused(f"more than {_MAX_XML_ELEMENTS:,} elements")

    def end(tag: str) -> None:
        nonlocal depth
        depth -= 1

    def entity(*args: object) -> None:
        raise Refused("it declares an XML entity (GraphML needs none)")

    parser = expat.ParserCreate()
    parser.StartElementHandler, parser.EndElementHandler, parser.EntityDeclHandler = start, end, entity
    try:
        parser.Parse(data, True)
    except Refused as exc:
        raise TopologyError(f"cannot read {filename} as GraphML: {exc}") from None
    except expat.ExpatError as exc:
        raise TopologyError(f"cannot read {filename} as GraphML: {clip(str(exc))}") from None
    try:
        return _nx().read_graphml(io.BytesIO(data))
    except (ET.ParseError, _nx().NetworkXError, KeyError, ValueError, TypeError) as exc:
        first = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise TopologyError(f"cannot read {filename} as GraphML: {clip(first)}") from None


def _from_json(data: bytes, path: Path) -> Topology:
    """gossip's own format: ``{"gossip_topology": 1, "name", "n", "edges": [[u, v] or [u, v, {data}]], "nodes": {id: {data}}}``."""
    doc = load_json(data, max_depth=MAX_DEPTH, max_values=_MAX_JSON_VALUES, error=TopologyError, where=f"cannot read {path.name} as JSON")
    what = f'{path.name} is not a gossip topology file (a JSON object with "gossip_topology": {JSON_FORMAT})'
    _need(isinstance(doc, dict) and type(doc.get("gossip_topology")) is int and doc["gossip_topology"] == JSON_FORMAT, what)
    n, name, edges, nodes = doc.get("n"), doc.get("name"), doc.get("edges"), doc.get("nodes", {})
    _need(type(n) is int and n > 0, f'{path.name}: "n" must be a positive integer, got {_shown(n)}')
    _need(n <= MAX_NODES, f'{path.name}: "n" is {_count(n)}; gossip runs at most {MAX_NODES:,} nodes')
    _need(name is None or isinstance(name, str), f'{path.name}: "name" must be a string, got {_shown(name)}')
    name = path.stem if name is None else _file_name(name, path.name, '"name"')
    _need(
        isinstance(edges, list) and all(isinstance(e, list) and (len(e) == 2 or (len(e) == 3 and isinstance(e[2], dict))) for e in edges),
        f'{path.name}: "edges" must be a list of [u, v] or [u, v, {{data}}]',
    )
    _need(len(edges) <= 2 * MAX_EDGES, f'{path.name}: "edges" lists {len(edges):,} edges; gossip runs at most {MAX_EDGES:,}')
    _need(isinstance(nodes, dict) and all(isinstance(d, dict) for d in nodes.values()), f'{path.name}: "nodes" must map ids to {{data}}')
    node_data: dict[int, dict[str, Any]] = {}
    for key, value in nodes.items():
        i = _as_int(key, path.name)
        _need(i is not None, f'{path.name}: "nodes" key {quote(key)} is not a node id')
        node_data[int(i)] = value  # type: ignore[arg-type]
    return Topology.from_edges(n, [tuple(e) for e in edges], name, node_data)


def _parse_text(text: str, filename: str) -> nx.Graph:
    """Detect and parse one of the three text formats; the rule is spelled out in topologies/README.md."""
    # Count lines as splitlines() will cut them, before it makes a list of them ("\r\n" is one break).
    breaks = sum(text.count(c) for c in "\n\r\x0b\x0c\x1c\x1d\x1e\x85\u2028\u2029") - text.count("\r\n")
    _need(breaks < _MAX_TEXT_LINES, f"{filename} has more than {_MAX_TEXT_LINES:,} lines")
    # Comment-only lines vanish; blank lines stay, because in the adjacency format they are nodes.
    lines = [(k, raw.split("#", 1)[0].strip()) for k, raw in enumerate(text.splitlines(), 1) if not raw.lstrip().startswith("#")]
    long = next(((k, line) for k, line in lines if len(line) > _MAX_LINE_CHARS), None)
    _need(long is None, f"{filename} line {long[0] if long else 0}: longer than {_MAX_LINE_CHARS:,} characters")
    while lines and not lines[0][1]:
        lines.pop(0)
    _need(bool(lines), f"{filename} is empty")
    first = lines[0][1].split()
    if len(first) != 1:
        return _parse_nx_edgelist(lines, filename)
    head = f"{filename} line {lines[0][0]}"
    _need(first[0].isascii() and first[0].isdigit(), f"{head}: expected a node count or 'u v', got {quote(lines[0][1])}")
    _need(
        len(first[0].lstrip("0")) <= _MAX_ID_DIGITS,
        f"{head}: node count has {len(first[0]):,} digits; gossip runs at most {MAX_NODES:,} nodes",
    )
    n, rest = int(first[0]), lines[1:]
    _need(n >= 1, f"{head}: node count must be >= 1")
    _need(n <= MAX_NODES, f"{head}: node count {n:,}; gossip runs at most {MAX_NODES:,} nodes")
    while len(rest) > n and not rest[-1][1]:
        rest.pop()  # trailing blank lines are not nodes
    graph = _nx().empty_graph(n)
    adjacency, why_not = _as_adjacency(rest, n) if len(rest) == n else (None, "")
    if adjacency is not None:
        edges = sum(map(len, adjacency)) // 2
        _need(edges <= MAX_EDGES, f"{filename} has {edges:,} edges; gossip runs at most {MAX_EDGES:,}")
        graph.add_edges_from((i, j) for i, row in enumerate(adjacency) for j in row)
        return graph
    count = 0
    for k, line in rest:
        if not line:
            continue
        ids = _ints(line.split(), filename, k)
        if len(ids) != 2:
            also = f"; nor a symmetric adjacency list ({why_not})" if why_not else ""
            raise TopologyError(f"{filename} line {k}: expected 'u v', got {quote(line)}{also}")
        bad = [i for i in ids if not 0 <= i < n]
        if bad:
            raise TopologyError(f"{filename} line {k}: node {bad[0]} is outside 0..{n - 1} (the first line says n = {n})")
        count = _add_edge(graph, (ids[0], ids[1]), {}, count, filename, k)
    return graph


def _add_edge(graph: nx.Graph, edge: tuple[int, int], data: Mapping[str, Any], count: int, filename: str, k: int) -> int:
    """``graph.add_edge``, refusing a new edge past MAX_EDGES (NetworkX spends about 1 KB an edge); returns the new count."""
    if not graph.has_edge(*edge):
        count += 1
        if count > MAX_EDGES:
            raise TopologyError(f"{filename} line {k}: more than {MAX_EDGES:,} edges; gossip runs at most {MAX_EDGES:,}")
    graph.add_edge(*edge, **data)
    return count


def _as_adjacency(rows: list[tuple[int, str]], n: int) -> tuple[list[set[int]] | None, str]:
    """Read n lines as neighbour lists, or say why they are not a (symmetric, loop-free) adjacency list."""
    adjacency: list[set[int]] = []
    for i, (_, line) in enumerate(rows):
        try:
            row = {int(t) for t in line.split()}
        except ValueError:  # also a run of 4300+ digits
            return None, f"line for node {i} is not integers"
        if i in row or any(not 0 <= j < n for j in row):
            return None, f"node {i} lists itself or an id outside 0..{n - 1}"
        adjacency.append(row)
    for i, row in enumerate(adjacency):
        for j in row:
            if i not in adjacency[j]:
                return None, f"node {i} lists {j} but {j} does not list {i}"
    return adjacency, ""


def _parse_nx_edgelist(lines: list[tuple[int, str]], filename: str) -> nx.Graph:
    graph, count = _nx().Graph(), 0
    for k, line in lines:
        if not line:
            continue
        parts = line.split(maxsplit=2)
        _need(len(parts) >= 2, f"{filename} line {k}: expected 'u v [data]', got {quote(line)}")
        u, v = _ints(parts[:2], filename, k)
        data: dict[str, Any] = {}
        if len(parts) == 3:
            data = _edge_data(parts[2], filename, k)
        count = _add_edge(graph, (u, v), data, count, filename, k)
    return graph


def _edge_data(text: str, filename: str, k: int) -> dict[str, Any]:
    if text.startswith("{"):
        data = None
        if len(text) <= _MAX_EDGE_DATA_CHARS and _plain_literal(text):
            try:
                data = ast.literal_eval(text)  # literals only: a file cannot run code
            except (ValueError, SyntaxError, TypeError):  # TypeError: an unhashable key, as in {[1]: 2}
                pass
        if not isinstance(data, dict):
            rule = f"at most {_MAX_EDGE_DATA_CHARS:,} characters of plain values nested at most {_MAX_EDGE_DATA_DEPTH} deep"
            raise TopologyError(f"{filename} line {k}: edge data {quote(text, 40)} is not a {{key: value}} dict ({rule})")
        return {str(key): value for key, value in data.items()}
    try:
        return {"weight": float(text)}
    except ValueError:
        raise TopologyError(f"{filename} line {k}: expected 'u v', 'u v weight' or 'u v {{data}}', got extra {quote(text)}") from None


# One token of a literal: a string (prefixes allowed), a number, a name, or a bracket, comma, colon or sign.
_LITERAL_TOKEN = re.compile(
    r"""\s*(?:(?P<str>[bBrRuU]{0,2}(?:'(?:[^'\\\n]|\\.)*'|"(?:[^"\\\n]|\\.)*"))"""
    r"|(?P<num>(?:0[xXoObB][0-9a-fA-F_]+|(?:\d[\d_]*\.?[\d_]*|\.\d[\d_]*)(?:[eE][+-]?\d[\d_]*)?[jJ]?))"
    r"|(?P<name>[A-Za-z_]\w*)|(?P<op>[-+,:{}\[\]()]))"
)


def _plain_literal(text: str) -> bool:
    """Whether ``text`` is made of the tokens of a literal, with brackets nested at most _MAX_EDGE_DATA_DEPTH deep,
    signs only in front of numbers, and no name but True, False and None.

    ``ast.literal_eval`` parses before it checks: ``- - - ... 1``, ``1+1+...`` or ``not not ... 1`` a
    few hundred times, or a few hundred nested brackets, make the parser raise RecursionError or
    MemoryError (how deep it gets depends on the caller's stack). This scan bounds the depth first, so
    literal_eval only sees a tree as deep as the brackets allow.
    """
    depth, previous, signed, pos = 0, "", False, 0
    while pos < len(text):
        match = _LITERAL_TOKEN.match(text, pos)
        if match is None:
            return text[pos:].isspace()
        pos, kind, token = match.end(), match.lastgroup, match[match.lastgroup or 0]
        if signed and kind != "num":
            return False
        signed = token in ("+", "-")
        if signed and previous not in ("", "{", "[", "(", ",", ":"):
            return False  # a binary + or -: literal_eval's chains of them are what recurse
        if kind == "name" and token not in ("True", "False", "None"):
            return False
        depth += (token in "{[(") - (token in ")]}") if kind == "op" else 0
        if not 0 <= depth <= _MAX_EDGE_DATA_DEPTH:
            return False
        previous = token
    return depth == 0 and not signed


def _ints(tokens: list[str], filename: str, k: int) -> list[int]:
    try:
        ids = [int(t) for t in tokens]  # also ValueError for a run of 4300+ digits
    except ValueError:
        raise TopologyError(f"{filename} line {k}: node ids must be integers, got {quote(' '.join(tokens))}") from None
    for i in ids:
        if not -_ID_LIMIT < i < _ID_LIMIT:  # before a message or a set of ids spells it out
            raise TopologyError(f"{filename} line {k}: node id {_count(i)} is outside 0..{MAX_NODES - 1:,}")
    return ids


def save(topology: Topology, path: str | Path) -> None:
    """Write ``.json`` (gossip's own), ``.graphml``, ``.edges`` (decentralizepy edges), ``.adjacency``
    (decentralizepy) or a NetworkX edge list.

    JSON and GraphML keep the name and every node and edge attribute. The decentralizepy edges format
    lists every edge in both directions, as decentralizepy itself writes it.
    """
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix == ".json":
        text = _to_json(topology)  # ASCII: json.dumps escapes the rest
        if len(text) > MAX_FILE_BYTES:  # a node process would refuse to load it
            raise TopologyError(
                f"topology {topology.name} is {size_text(len(text))} as JSON, more than the {size_text(MAX_FILE_BYTES)} load() reads"
            )
        path.write_text(text, encoding="utf-8")
        return
    if suffix == ".graphml":
        named = _nx().Graph(topology.graph)
        named.graph["name"] = topology.name  # so a copy in a run directory still loads as e.g. "torus-4x4"
        _nx().write_graphml(named, path)
        return
    if suffix == ".edges":
        body = [f"{i} {j}" for i in range(topology.n) for j in topology.neighbours(i)]
        lines = [str(topology.n), *body]
    elif suffix in (".adjacency", ".adj"):
        lines = [str(topology.n), *(" ".join(map(str, topology.neighbours(i))) for i in range(topology.n))]
    else:
        lines = [f"# {topology.name}: {topology.n} nodes, {len(topology.edges)} edges (networkx edge list)"]
        data = {(u, v): topology.edge_attributes(u, v) for u, v in topology.edges}
        lines += [f"{u} {v} {_plain(data[u, v])!r}" if data[u, v] else f"{u} {v}" for u, v in topology.edges]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")


def _to_json(topology: Topology) -> str:
    # One edge a line: readable and diffable, and still one json.loads.
    head = {"gossip_topology": JSON_FORMAT, "name": topology.name, "n": topology.n}
    edges = []
    for u, v in topology.edges:
        data = topology.edge_attributes(u, v)
        edges.append([u, v, _plain(data)] if data else [u, v])
    nodes = {str(i): _plain(d) for i in range(topology.n) if (d := topology.node_attributes(i))}
    try:
        parts = [f"{json.dumps(k)}: {json.dumps(v)}" for k, v in head.items()]
        parts.append('"edges": [\n' + ",\n".join(f"  {json.dumps(e)}" for e in edges) + "\n ]")
        if nodes:
            parts.append('"nodes": {\n' + ",\n".join(f"  {json.dumps(k)}: {json.dumps(d)}" for k, d in nodes.items()) + "\n }")
    except TypeError as exc:
        raise TopologyError(f"topology {topology.name}: cannot write its data as JSON: {exc}") from None
    return "{" + ",\n ".join(parts) + "\n}\n"


def _plain(data: Mapping[str, Any]) -> dict[str, Any]:
    # numpy scalars repr as "np.float64(1.0)", which the reader's literal_eval would refuse.
    return {key: value.item() if isinstance(value, np.generic) else value for key, value in data.items()}


# --- presentation --------------------------------------------------------------------------------------


DESCRIBE_MAX_NODES = 2_000
"""Largest topology whose diameter and spectrum :func:`describe` computes, and :func:`draw` lays out by
simulated springs: both cost O(N²) memory or worse in time (a dense eigendecomposition is O(N³): 80 s at
5 000 nodes on 2 cores), so a larger graph is described by its degrees and drawn on a circle."""


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
    out.append(f"diameter      {skipped if large else _nx().diameter(topology.graph)}")
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
    pos = _nx().spring_layout(topology.graph, seed=0)
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
