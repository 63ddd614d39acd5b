"""Seeded graph generators and the spec strings that name a generator or a file (``ring``, ``torus:4x4``, ``er:p=0.3``).

Same (kind, n, seed, params) → same graph: random kinds retry with seed+1, seed+2, ... until connected.
A generator's size is estimated and refused above :data:`~gossip.topology.graph.MAX_EDGES` before it is
built, so ``complete`` on 100 000 nodes costs one line, not the memory.
"""

from __future__ import annotations

import difflib
import math
import re
from collections.abc import Callable, Mapping
from pathlib import Path
from types import MappingProxyType
from typing import TYPE_CHECKING, Any

import numpy as np

from gossip.errors import TopologyError
from gossip.inputs import clip, quote
from gossip.topology.checks import MAX_ID_DIGITS, count_text, need, shown
from gossip.topology.files import FILE_SUFFIXES, load
from gossip.topology.graph import MAX_EDGES, MAX_NODES, Topology, networkx

if TYPE_CHECKING:
    import networkx as nx

    from gossip.config import RunConfig

__all__ = ["KINDS", "generate", "parse_spec", "topology_of"]


def _connected_sample(make: Callable[[int], nx.Graph], seed: int, what: str) -> nx.Graph:
    # Seeds seed, seed+1, ...: deterministic for a given seed, and never a disconnected graph.
    for k in range(100):
        graph = make(seed + k)
        if networkx().is_connected(graph):
            return graph
    raise TopologyError(f"{what}: no connected graph in 100 seeds from {seed}; use a denser setting")


def _ring(n: int, seed: int) -> tuple[nx.Graph, str]:
    need(n >= 3, f"ring needs n >= 3, got {n}")
    return networkx().cycle_graph(n), f"ring-{n}"


def _torus(n: int, seed: int, rows: int | None = None, cols: int | None = None) -> tuple[nx.Graph, str]:
    rows, cols = _torus_shape(n, rows, cols)
    grid = networkx().grid_2d_graph(rows, cols, periodic=True)  # rows or cols of 2 would need parallel edges
    return networkx().convert_node_labels_to_integers(grid, ordering="sorted"), f"torus-{rows}x{cols}"


def _torus_shape(n: int, rows: int | None, cols: int | None) -> tuple[int, int]:
    hint = "torus needs n = rows*cols with rows, cols >= 3 (e.g. 16 -> 4x4)"
    if rows is None and cols is None:
        rows = next((r for r in range(math.isqrt(n), 2, -1) if n % r == 0 and n // r >= 3), None)
        if rows is None:
            raise TopologyError(f"{hint}; {n} has no such factorisation")
    if rows is not None and cols is None:
        need(rows > 0 and n % rows == 0, f"{hint}; {n} is not a multiple of rows={rows}")
        cols = n // rows
    elif cols is not None and rows is None:
        need(cols > 0 and n % cols == 0, f"{hint}; {n} is not a multiple of cols={cols}")
        rows = n // cols
    if rows is None or cols is None:  # unreachable: every branch above fixed both
        raise TopologyError(hint)
    need(rows * cols == n, f"torus {rows}x{cols} has {rows * cols} nodes, not {n}")
    need(rows >= 3 and cols >= 3, f"{hint}; got {rows}x{cols}")
    return rows, cols


def _complete(n: int, seed: int) -> tuple[nx.Graph, str]:
    return networkx().complete_graph(n), f"complete-{n}"


def _star(n: int, seed: int) -> tuple[nx.Graph, str]:
    return networkx().star_graph(n - 1), f"star-{n}"  # node 0 is the hub: the federated-learning reference


def _erdos_renyi(n: int, seed: int, p: float | None = None) -> tuple[nx.Graph, str]:
    p = min(1.0, 2.0 * math.log(n) / n) if p is None else p
    need(0.0 < p <= 1.0, f"erdos-renyi needs 0 < p <= 1, got {p}")
    graph = _connected_sample(lambda s: networkx().gnp_random_graph(n, p, seed=s), seed, f"erdos-renyi n={n} p={p:g}")
    return graph, f"erdos-renyi-{n}-p{p:.3g}"


def _barabasi_albert(n: int, seed: int, m: int = 2) -> tuple[nx.Graph, str]:
    need(1 <= m < n, f"barabasi-albert needs 1 <= m < n, got m={m}, n={n}")
    return networkx().barabasi_albert_graph(n, m, seed=seed), f"barabasi-albert-{n}-m{m}"


def _exponential(n: int, seed: int) -> tuple[nx.Graph, str]:
    # Ying et al. 2021's static exponential graph, made undirected: i ~ i + 2^k (mod n), k < ceil(log2 n).
    graph = networkx().empty_graph(n)
    graph.add_edges_from((i, (i + 2**k) % n) for i in range(n) for k in range(math.ceil(math.log2(n))))
    return graph, f"exponential-{n}"


def _regular(n: int, seed: int, d: int = 4) -> tuple[nx.Graph, str]:
    need(2 <= d < n and n * d % 2 == 0, f"regular needs 2 <= d < n and n*d even, got n={n}, d={d}")
    graph = _connected_sample(lambda s: networkx().random_regular_graph(d, n, seed=s), seed, f"regular n={n} d={d}")
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
    need(isinstance(n, int) and not isinstance(n, bool) and n >= 2, f"topology {name!r} needs at least 2 nodes, got {shown(n)}")
    need(n <= MAX_NODES, f"topology {name!r}: {count_text(n)} nodes; gossip runs at most {MAX_NODES:,}")
    args = {key: _param(name, key, value, schema[key]) for key, value in params.items()}
    edges = _edge_estimate(name, n, args)
    need(edges <= MAX_EDGES, f"topology {name!r} on {n:,} nodes would have about {edges:,.0f} edges; gossip runs at most {MAX_EDGES:,}")
    graph, label = make(n, seed, **args)
    return Topology(graph, label)


def _param(kind: str, key: str, value: object, want: type) -> int | float:
    """A generator parameter as ``want``: a finite number, and for an int a whole one in 1..MAX_NODES."""
    if isinstance(value, bool) or not isinstance(value, int | float | np.integer | np.floating):
        raise TopologyError(f"topology {kind!r}: {key} must be a number, got {shown(value)}")
    if want is int:
        is_whole = isinstance(value, int | np.integer) or (math.isfinite(value) and float(value).is_integer())
        need(is_whole, f"topology {kind!r}: {key} must be an integer, got {shown(value)}")
        number = int(value)
        need(1 <= number <= MAX_NODES, f"topology {kind!r}: {key} must be in 1..{MAX_NODES:,}, got {count_text(number)}")
        return number
    need(isinstance(value, int | np.integer) or math.isfinite(value), f"topology {kind!r}: {key} must be finite, got {value}")
    try:
        return float(value)
    except OverflowError:
        raise TopologyError(f"topology {kind!r}: {key} = {count_text(int(value))} is out of range") from None


def _edge_estimate(kind: str, n: int, args: Mapping[str, Any]) -> float:
    """How many edges ``kind`` builds on ``n`` nodes (expected, for er): refused above MAX_EDGES before building."""
    if kind == "complete":
        return n * (n - 1) / 2
    if kind == "erdos-renyi":
        p = float(args.get("p", min(1.0, 2.0 * math.log(n) / n)))
        return max(0.0, min(p, 1.0)) * n * (n - 1) / 2
    if kind == "barabasi-albert":
        return float(args.get("m", 2) * n)
    if kind == "regular":
        return float(args.get("d", 4) * n / 2)
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
    need(bool(text), "topology spec is empty")
    path = Path(text).expanduser()
    looks_like_path = "/" in text or path.suffix.lower() in FILE_SUFFIXES
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
        need("rows" in params and "cols" in params, f"topology {quote(kind_text)} needs --nodes")
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
            need(len(digits) <= MAX_ID_DIGITS, f"topology 'torus': {key} has {len(digits):,} digits; it must be in 1..{MAX_NODES:,}")
        return {"rows": int(grid[1]), "cols": int(grid[2])}
    schema = _GENERATORS[kind][1]
    need(bool(schema), f"topology {kind!r} takes no parameters, got {quote(text)}")
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
