"""Topology: generators, validation, file formats, mixing matrices and their spectra, describe and draw."""

from __future__ import annotations

import importlib.util
import math
import tracemalloc
from collections.abc import Callable
from pathlib import Path

import matplotlib.image
import networkx as nx
import numpy as np
import pytest

from gossip.errors import TopologyError
from gossip.topology import KINDS, Topology, describe, draw, generate, load, parse_spec, save

TOPOLOGIES = Path(__file__).resolve().parents[2] / "topologies"


def refusal(call: Callable[[], object]) -> str:
    """Run ``call``, expect a TopologyError, and return its message, which must be a single line."""
    with pytest.raises(TopologyError) as info:
        call()
    message = str(info.value)
    assert message and "\n" not in message, message
    return message


def edge_set(topology: Topology) -> set[frozenset[int]]:
    return {frozenset(e) for e in topology.edges}


def write_decentralizepy(graph: nx.Graph, path: Path, kind: str, both_directions: bool = True) -> None:
    """A stand-alone writer of decentralizepy's two formats: first line n, then edges or adjacency lines."""
    n = graph.number_of_nodes()
    if kind == "adjacency":
        lines = [" ".join(map(str, sorted(graph.adj[i]))) for i in range(n)]
    elif both_directions:  # what decentralizepy's Graph.write_graph_to_file(type="edges") does
        lines = [f"{i} {j}" for i in range(n) for j in sorted(graph.adj[i])]
    else:
        lines = [f"{u} {v}" for u, v in sorted(graph.edges)]
    path.write_text("\n".join([str(n), *lines]) + "\n")


# --- generators ------------------------------------------------------------------------------------


@pytest.mark.parametrize("n", [16, 36])
@pytest.mark.parametrize("kind", [*KINDS, "er", "ba", "exp"])
def test_every_generator_yields_a_connected_graph_of_n_nodes(kind: str, n: int) -> None:
    """Each kind (and alias) builds a connected simple graph over exactly 0..n-1."""
    topology = generate(kind, n, seed=3)

    assert sorted(topology.graph.nodes) == list(range(n))
    assert nx.is_connected(topology.graph)
    assert nx.number_of_selfloops(topology.graph) == 0


@pytest.mark.parametrize("kind", ["erdos-renyi", "barabasi-albert", "regular"])
def test_random_generators_are_reproducible_from_the_seed(kind: str) -> None:
    """Same seed, same graph; another seed, another graph."""
    assert generate(kind, 24, seed=7) == generate(kind, 24, seed=7)
    assert edge_set(generate(kind, 24, seed=7)) != edge_set(generate(kind, 24, seed=8))


@pytest.mark.parametrize(
    ("kind", "n", "params", "degrees"),
    [
        ("ring", 10, {}, {2}),
        ("torus", 20, {}, {4}),
        ("complete", 6, {}, {5}),
        ("regular", 20, {"d": 3}, {3}),
        ("exponential", 16, {}, {7}),  # ±1, ±2, ±4 and 8 (its own inverse mod 16)
        ("star", 9, {}, {1, 8}),
    ],
)
def test_generators_have_the_documented_degrees(kind: str, n: int, params: dict[str, float], degrees: set[int]) -> None:
    """Structural kinds have the degrees their definition implies."""
    assert set(generate(kind, n, **params).degrees()) == degrees


def test_torus_picks_the_most_square_factorisation() -> None:
    """``torus`` without rows/cols takes the factorisation closest to a square, node r*cols + c at (r, c)."""
    topology = generate("torus", 24)

    assert topology.name == "torus-4x6"
    assert topology.neighbours(0) == (1, 5, 6, 18)


@pytest.mark.parametrize(
    ("kind", "n", "params", "expected"),
    [
        ("torus", 14, {}, "14 has no such factorisation"),
        ("torus", 16, {"rows": 2}, "got 2x8"),
        ("ring", 2, {}, "ring needs n >= 3"),
        ("regular", 9, {"d": 3}, "n*d even"),
        ("ba", 5, {"m": 5}, "1 <= m < n"),
        ("er", 10, {"p": 1.5}, "0 < p <= 1"),
        ("ring", 8, {"p": 0.5}, "has no parameter 'p'"),
        ("ba", 8, {"m": 2.5}, "m must be an integer"),
    ],
)
def test_generator_arguments_are_checked(kind: str, n: int, params: dict[str, float], expected: str) -> None:
    """Impossible sizes and unknown or malformed parameters are one-line refusals."""
    assert expected in refusal(lambda: generate(kind, n, **params))


# --- the Topology value ----------------------------------------------------------------------------


def test_topology_is_frozen_and_compares_by_name_and_edges() -> None:
    """The stored graph cannot be mutated, and equal graphs make equal, hashable topologies."""
    a, b = generate("ring", 8), Topology(nx.cycle_graph(8), "ring-8")

    with pytest.raises(nx.NetworkXError):
        a.graph.add_edge(0, 4)
    assert a == b and hash(a) == hash(b)
    assert a != Topology(nx.cycle_graph(8), "other")


def test_accessors_report_sorted_neighbours_degrees_and_edges() -> None:
    """neighbours() is sorted, edges are (u < v) sorted, degrees are indexed by node."""
    topology = Topology(nx.Graph([(3, 0), (0, 1), (1, 2), (2, 3), (0, 2)]), "kite")

    assert topology.n == 4
    assert topology.edges == [(0, 1), (0, 2), (0, 3), (1, 2), (2, 3)]
    assert topology.neighbours(0) == (1, 2, 3)
    assert topology.degree(1) == 2
    assert topology.degrees() == (3, 2, 3, 2)


@pytest.mark.parametrize("node", [-1, 4, "0"])
def test_unknown_node_ids_are_refused(node: object) -> None:
    """Asking about a node outside 0..N-1 is a TopologyError, not a KeyError deep in NetworkX."""
    topology = generate("ring", 4)
    assert "is not in topology" in refusal(lambda: topology.neighbours(node))  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("graph", "expected"),
    [
        (nx.Graph([(0, 1), (1, 2), (2, 3), (3, 3)]), "topology t: self loop at node 3"),
        (nx.disjoint_union(nx.cycle_graph(8), nx.cycle_graph(8)), "disconnected: 2 components, e.g. nodes {0..7} and {8..15}"),
        (nx.Graph([(0, 1), (1, 2), (2, 3), (3, 17)]), "node ids must be 0..4: missing 4, unexpected 17"),
        (nx.Graph([(1, 2), (2, 3)]), "missing 0, unexpected 3"),
        (nx.empty_graph(0), "has no nodes"),
        (nx.Graph([("0", "1"), ("1", "01")]), "node id 1 appears twice (as '1' and '01')"),
    ],
)
def test_validation_refuses_bad_graphs_in_one_line(graph: nx.Graph, expected: str) -> None:
    """Self loops, disconnected graphs and ids that are not exactly 0..N-1 are refused, whatever the source."""
    assert expected in refusal(lambda: Topology(graph, "t"))


def test_directed_and_multi_graphs_become_simple_undirected_graphs() -> None:
    """A directed cycle becomes a ring; parallel edges collapse (D-SGD with MH needs a symmetric W)."""
    directed = Topology(nx.DiGraph([(0, 1), (1, 2), (2, 0)]), "d")
    multi = Topology(nx.MultiGraph([(0, 1), (0, 1), (1, 2)]), "m")

    assert type(directed.graph) is nx.Graph and directed.edges == [(0, 1), (0, 2), (1, 2)]
    assert multi.edges == [(0, 1), (1, 2)]


def test_named_nodes_are_numbered_in_natural_order_and_keep_their_label() -> None:
    """Non-integer ids (as GraphML allows) become 0..N-1 in natural order ("n2" < "n10"); the name is kept as "label"."""
    cities = Topology(nx.Graph([("paris", "berlin"), ("berlin", "rome")]), "cities")
    numbered = Topology(nx.path_graph([f"n{i}" for i in range(12)]), "path")

    assert [cities.graph.nodes[i]["label"] for i in range(3)] == ["berlin", "paris", "rome"]
    assert cities.edges == [(0, 1), (0, 2)]
    assert numbered.edges == [(i, i + 1) for i in range(11)]
    assert numbered.graph.nodes[10]["label"] == "n10"


# --- mixing matrices and spectra ---------------------------------------------------------------------

GRAPHS = {
    "ring-16": lambda: generate("ring", 16),
    "torus-4x4": lambda: generate("torus", 16),
    "ba-32 (irregular)": lambda: generate("ba", 32),
    "er-20 (irregular)": lambda: generate("er", 20, p=0.3),
    "star-8 (irregular)": lambda: generate("star", 8),
    "wan-8 (irregular)": lambda: load(TOPOLOGIES / "wan-8.graphml"),
}


@pytest.mark.parametrize("kind", ["metropolis", "max-degree"])
@pytest.mark.parametrize("make", GRAPHS.values(), ids=GRAPHS.keys())
def test_mixing_matrix_is_symmetric_doubly_stochastic_on_edges(make: Callable[[], Topology], kind: str) -> None:
    """MH and max-degree W are symmetric, nonnegative, doubly stochastic and zero off the edges and diagonal."""
    topology = make()
    matrix = topology.mixing_matrix(kind)
    support = nx.to_numpy_array(topology.graph, nodelist=range(topology.n)) + np.eye(topology.n)

    assert matrix.shape == (topology.n, topology.n) and matrix.dtype == np.float64
    np.testing.assert_array_equal(matrix, matrix.T)
    np.testing.assert_allclose(matrix.sum(axis=0), 1.0, rtol=0, atol=1e-12)
    np.testing.assert_allclose(matrix.sum(axis=1), 1.0, rtol=0, atol=1e-12)
    assert (matrix >= 0).all()
    assert (matrix[support == 0] == 0).all()


def test_metropolis_weights_follow_the_max_degree_rule() -> None:
    """W_ij = 1/(1 + max(d_i, d_j)) on edges: the star's hub edge gets 1/8, and leaves keep 7/8."""
    weights = generate("star", 8).mixing_weights(3)

    assert weights == {0: pytest.approx(1 / 8), 3: pytest.approx(7 / 8)}


@pytest.mark.parametrize("kind", ["metropolis", "max-degree", "uniform"])
@pytest.mark.parametrize("make", GRAPHS.values(), ids=GRAPHS.keys())
def test_mixing_weights_are_the_matrix_row_on_the_closed_neighbourhood(make: Callable[[], Topology], kind: str) -> None:
    """mixing_weights(i) has exactly the keys N_i ∪ {i}, equals row i of W bit for bit and sums to 1, for every kind of weights."""
    topology = make()
    if kind == "uniform" and len(set(topology.degrees())) > 1:
        with pytest.raises(TopologyError, match="regular graph"):
            topology.mixing_weights(0, kind)
        return
    for i in range(topology.n):
        weights = topology.mixing_weights(i, kind)
        assert list(weights) == sorted({*topology.neighbours(i), i})
        assert weights == {j: topology.mixing_matrix(kind)[i, j] for j in weights}
        assert math.isclose(sum(weights.values()), 1.0, abs_tol=1e-12)


def test_a_nodes_weights_and_the_weights_check_build_no_n_by_n_matrix() -> None:
    """Every node needs its row of W and every launch checks the weights: on a ring of the most nodes
    gossip runs (10 000) neither allocates the dense W (800 MB), only rows of N (measured with tracemalloc,
    which numpy reports to)."""
    topology = parse_spec("ring", n=10_000)
    tracemalloc.start()
    try:
        topology.check_weights("metropolis")
        weights = topology.mixing_weights(2_345, "metropolis")
        _now, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert weights == {2_344: 1 / 3, 2_345: 1 - 2 / 3, 2_346: 1 / 3}
    assert peak < 20 * 10_000 * 8, peak  # a few rows of N floats at most


def test_the_weights_check_refuses_what_the_matrix_refuses() -> None:
    """check_weights raises the same one-line errors as mixing_matrix: an unknown kind, uniform on an irregular graph."""
    star = generate("star", 6)
    for kind, match in (("bogus", "unknown weights"), ("uniform", "regular graph")):
        with pytest.raises(TopologyError, match=match):
            star.check_weights(kind)
        with pytest.raises(TopologyError, match=match):
            star.mixing_matrix(kind)


def test_mixing_matrix_is_cached_and_read_only() -> None:
    """The same array is returned on every call, and it cannot be written through."""
    topology = generate("torus", 16)

    assert topology.mixing_matrix() is topology.mixing_matrix()
    with pytest.raises(ValueError, match="read-only"):
        topology.mixing_matrix()[0, 0] = 0.0


@pytest.mark.parametrize("kind", ["ring", "torus", "regular", "exponential", "complete"])
def test_uniform_weights_on_a_regular_graph_are_doubly_stochastic(kind: str) -> None:
    """On a regular graph 1/(d+1) on the closed neighbourhood is doubly stochastic."""
    matrix = generate(kind, 16).mixing_matrix("uniform")

    np.testing.assert_allclose(matrix.sum(axis=0), 1.0, rtol=0, atol=1e-12)
    np.testing.assert_allclose(matrix.sum(axis=1), 1.0, rtol=0, atol=1e-12)


def test_uniform_weights_on_an_irregular_graph_are_refused() -> None:
    """Uniform weights on an irregular graph would converge to a degree-weighted mean: refused, with the fix."""
    message = refusal(lambda: generate("ba", 32).mixing_matrix("uniform"))

    assert "uniform weights need a regular graph (degrees range 1..14)" in message
    assert "'metropolis'" in message


def test_unknown_weight_kind_is_refused() -> None:
    """A typo in the weights kind names the known kinds."""
    assert "known: metropolis, uniform, max-degree" in refusal(lambda: generate("ring", 8).mixing_matrix("metropolis-hastings"))


@pytest.mark.parametrize(("n", "gap"), [(8, 0.1953), (16, 0.0507), (32, 0.0128), (64, 0.0032)])
def test_ring_spectral_gap_matches_references(n: int, gap: float) -> None:
    """REFERENCES §1.2 / §8 row 3: ring with 1/3 weights; gap = (2/3)(1 - cos(2 pi / n))."""
    topology = generate("ring", n)

    assert topology.spectral_gap("uniform") == pytest.approx(gap, abs=1e-4)
    assert topology.spectral_gap("uniform") == pytest.approx(2 / 3 * (1 - math.cos(2 * math.pi / n)), abs=1e-12)
    assert topology.spectral_gap("metropolis") == pytest.approx(topology.spectral_gap("uniform"), abs=1e-12)


@pytest.mark.parametrize(("n", "gap"), [(8, 2 / 3), (16, 0.5), (32, 0.4), (64, 1 / 3)])
def test_undirected_exponential_spectral_gap_is_two_over_log2_n(n: int, gap: float) -> None:
    """Our exponential graph is undirected: its uniform-weight gap is 2/log2 n (0.5 at n = 16).

    REFERENCES §8 row 3 pins 0.4 = 2/(1 + log2 n) for n = 16, but that is Ying et al.'s *directed* graph
    (each node mixes itself and its log2 n out-neighbours at 1/(1 + log2 n)). Making the graph undirected
    doubles the degree to 2 log2 n - 1 (k = log2 n - 1 pairs with itself), weights become 1/(2 log2 n), and
    the gap grows to 2/log2 n. Checked numerically for n = 8..64.
    """
    assert generate("exponential", n).spectral_gap("uniform") == pytest.approx(gap, abs=1e-12)


def test_complete_graph_averages_in_one_step() -> None:
    """The complete graph with uniform weights is (1/n) 1 1^T: gap 1."""
    assert generate("complete", 8).spectral_gap("uniform") == pytest.approx(1.0, abs=1e-12)


@pytest.mark.parametrize("make", GRAPHS.values(), ids=GRAPHS.keys())
def test_second_eigenvalue_bounds_the_consensus_contraction(make: Callable[[], Topology]) -> None:
    """||W^k x - mean|| <= lambda_2^k ||x - mean||, with equality approached for the slowest mode."""
    topology = make()
    matrix, rho = topology.mixing_matrix(), topology.second_eigenvalue()
    x = np.random.default_rng(0).normal(size=topology.n)
    deviation = np.linalg.norm(x - x.mean())

    for k in range(1, 40):
        x = matrix @ x
        assert np.linalg.norm(x - x.mean()) <= rho**k * deviation * (1 + 1e-9)
    assert 0 < rho < 1
    assert topology.spectral_gap() == pytest.approx(1 - rho)


def test_metropolis_gossip_on_an_irregular_graph_reaches_the_exact_mean() -> None:
    """REFERENCES §8 row 1: 500 MH gossip steps on an irregular graph give every node the plain mean."""
    topology = generate("ba", 32)
    x0 = np.random.default_rng(1).uniform(-5, 5, size=topology.n)

    x = np.linalg.matrix_power(topology.mixing_matrix("metropolis"), 500) @ x0

    np.testing.assert_allclose(x, x0.mean(), rtol=0, atol=1e-9)


# --- files -----------------------------------------------------------------------------------------

SHIPPED = [
    ("ring-16.edges", 16, 16, "ring-16"),
    ("ring-8.adjacency", 8, 8, "ring-8"),
    ("torus-4x4.graphml", 16, 32, "torus-4x4"),
    ("exponential-16.edgelist", 16, 56, "exponential-16"),
    ("barabasi-albert-32.graphml", 32, 60, "barabasi-albert-32-m2"),  # GraphML keeps the generator's name
    ("regular-16-d4.edgelist", 16, 32, "regular-16-d4"),
    ("wan-8.graphml", 8, 12, "wan-8"),
]


@pytest.mark.parametrize(("filename", "n", "edges", "name"), SHIPPED)
def test_every_shipped_file_loads_connected_with_its_documented_size(filename: str, n: int, edges: int, name: str) -> None:
    """Each file in topologies/ loads, is connected, and has the N and edge count the README gives."""
    topology = load(TOPOLOGIES / filename)

    assert (topology.n, len(topology.edges), topology.name) == (n, edges, name)
    assert nx.is_connected(topology.graph)


def test_shipped_files_list_is_complete() -> None:
    """No topology file is shipped without a row in this test (and the README)."""
    shipped = {p.name for p in TOPOLOGIES.iterdir() if p.suffix not in (".py", ".md") and p.is_file()}
    assert shipped == {row[0] for row in SHIPPED}


def test_shipped_files_are_reproduced_by_make_py(tmp_path: Path) -> None:
    """topologies/make.py regenerates every shipped file byte for byte."""
    spec = importlib.util.spec_from_file_location("make_topologies", TOPOLOGIES / "make.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)

    module.main(tmp_path)

    for filename, *_ in SHIPPED:
        assert (tmp_path / filename).read_bytes() == (TOPOLOGIES / filename).read_bytes(), filename


def test_wan_example_carries_link_attributes_on_every_edge() -> None:
    """wan-8.graphml keeps delay_ms, jitter_ms, loss and bandwidth_mbit as floats on every edge."""
    topology = load(TOPOLOGIES / "wan-8.graphml")

    for u, v in topology.edges:
        attributes = topology.edge_attributes(u, v)
        assert set(attributes) == {"delay_ms", "jitter_ms", "loss", "bandwidth_mbit"}
        assert all(isinstance(value, float) for value in attributes.values())
        assert 0.0 <= attributes["loss"] <= 1.0  # type: ignore[operator]
    assert "no edge (0, 6)" in refusal(lambda: topology.edge_attributes(0, 6))


DECENTRALIZEPY_CASES = {
    "ring-16": nx.cycle_graph(16),
    "ring-8": nx.cycle_graph(8),
    "er-12": nx.gnp_random_graph(12, 0.4, seed=5),
    "regular-10-d3": nx.random_regular_graph(3, 10, seed=2),
}


@pytest.mark.parametrize(("kind", "both_directions"), [("adjacency", False), ("edges", True), ("edges", False)])
@pytest.mark.parametrize("graph", DECENTRALIZEPY_CASES.values(), ids=DECENTRALIZEPY_CASES.keys())
def test_decentralizepy_formats_round_trip(tmp_path: Path, graph: nx.Graph, kind: str, both_directions: bool) -> None:
    """Both decentralizepy formats read back to the same edge set, including a ring written as edges once
    (exactly n lines of two ids, which is also the shape of the ring's adjacency file)."""
    assert nx.is_connected(graph)
    path = tmp_path / f"graph.{kind}"
    write_decentralizepy(graph, path, kind, both_directions)

    assert edge_set(load(path)) == {frozenset(e) for e in graph.edges}


def test_ring_adjacency_and_ring_edges_are_told_apart_by_symmetry(tmp_path: Path) -> None:
    """The same bytes rule decides: n symmetric neighbour lists are adjacency, n edge lines are edges."""
    adjacency, edges = tmp_path / "a.txt", tmp_path / "e.txt"
    adjacency.write_text("4\n1 3\n0 2\n1 3\n0 2\n")  # ring 0-1-2-3 as neighbour lists
    edges.write_text("4\n0 1\n1 2\n2 3\n3 0\n")  # ring 0-1-2-3 as edges, 4 = n lines of 2 ids

    assert load(adjacency).edges == load(edges).edges == [(0, 1), (0, 3), (1, 2), (2, 3)]


@pytest.mark.parametrize("suffix", [".json", ".graphml", ".edges", ".adjacency", ".edgelist", ".txt"])
@pytest.mark.parametrize("kind", ["torus", "ba"])
def test_save_then_load_is_the_identity(tmp_path: Path, suffix: str, kind: str) -> None:
    """save() and load() agree on every format; JSON and GraphML also keep the name, text formats take the file stem."""
    topology = generate(kind, 16)
    save(topology, tmp_path / f"g{suffix}")

    again = load(tmp_path / f"g{suffix}")
    assert again.edges == topology.edges
    assert again.name == (topology.name if suffix in (".json", ".graphml") else "g")


def test_edge_list_save_writes_numpy_attributes_as_plain_literals(tmp_path: Path) -> None:
    """numpy scalars on edges are written as plain numbers, so the file reads back."""
    save(Topology(nx.Graph([(0, 1, {"delay_ms": np.float64(2.5)})]), "pair"), tmp_path / "pair.edgelist")

    assert load(tmp_path / "pair.edgelist").edge_attributes(0, 1) == {"delay_ms": 2.5}


@pytest.mark.parametrize("suffix", [".json", ".graphml", ".edgelist"])
def test_save_keeps_edge_attributes(tmp_path: Path, suffix: str) -> None:
    """JSON, GraphML and the NetworkX edge list carry edge attributes through a save/load round trip."""
    wan = load(TOPOLOGIES / "wan-8.graphml")
    save(wan, tmp_path / f"wan{suffix}")

    again = load(tmp_path / f"wan{suffix}")
    assert all(again.edge_attributes(u, v) == wan.edge_attributes(u, v) for u, v in wan.edges)


def test_networkx_edge_list_accepts_comments_weights_and_data(tmp_path: Path) -> None:
    """The NetworkX edge-list reader skips comments and keeps a weight column or a {...} data dict."""
    path = tmp_path / "g.edgelist"
    path.write_text("# a triangle\n0 1 2.5\n1 2 {'delay_ms': 5.0, 'loss': 0.1}  # slow link\n\n2 0\n")

    topology = load(path)

    assert topology.edge_attributes(0, 1) == {"weight": 2.5}
    assert topology.edge_attributes(1, 2) == {"delay_ms": 5.0, "loss": 0.1}
    assert topology.edge_attributes(0, 2) == {}


def test_graphml_with_integer_string_ids_loads_as_integers(tmp_path: Path) -> None:
    """GraphML ids are strings; "0".."N-1" become the ints 0..N-1 (hand-written files included)."""
    path = tmp_path / "tri.graphml"
    nx.write_graphml(nx.relabel_nodes(nx.cycle_graph(3), str), path)

    assert load(path).edges == [(0, 1), (0, 2), (1, 2)]


@pytest.mark.parametrize(
    ("filename", "content", "expected"),
    [
        ("split.edgelist", "0 1\n1 2\n2 0\n3 4\n4 5\n5 3\n", "disconnected: 2 components, e.g. nodes {0..2} and {3..5}"),
        ("loop.edgelist", "0 1\n1 2\n2 0\n2 2\n", "self loop at node 2"),
        ("holes.edgelist", "0 1\n1 2\n2 17\n", "node ids must be 0..3: missing 3, unexpected 17"),
        ("words.txt", "hello world\nfoo bar\n", "line 1: node ids must be integers"),
        ("extra.edgelist", "0 1 fast link\n", "line 1: expected 'u v', 'u v weight' or 'u v {data}'"),
        ("code.edgelist", "0 1 {__import__('os')}\n", "is not a {key: value} dict"),
        ("single.txt", "banana\n", "expected a node count or 'u v'"),
        ("empty.edges", "# nothing\n\n", "empty.edges is empty"),
        ("range.edges", "3\n0 1\n1 2\n2 7\n0 2\n", "line 4: node 7 is outside 0..2"),
        ("isolated.adjacency", "3\n1\n0\n\n", "disconnected: 2 components, e.g. nodes {0, 1} and {2}"),
        ("directed.adjacency", "3\n1 2\n0\n0 1\n", "nor a symmetric adjacency list (node 2 lists 1 but 1 does not list 2)"),
        ("broken.graphml", "<graphml><graph><node id='0'>", "cannot read broken.graphml as GraphML"),
    ],
)
def test_bad_files_are_refused_in_one_line(tmp_path: Path, filename: str, content: str, expected: str) -> None:
    """Every malformed or unusable file is a one-line TopologyError that says what is wrong (and where)."""
    path = tmp_path / filename
    path.write_text(content)

    assert expected in refusal(lambda: load(path))


def test_binary_garbage_is_refused(tmp_path: Path) -> None:
    """A file that is neither text nor GraphML is refused, not decoded into nonsense."""
    path = tmp_path / "model.pt"
    path.write_bytes(bytes(range(256)))

    assert "not a text edge list or GraphML file" in refusal(lambda: load(path))


@pytest.mark.parametrize("call", [lambda: load("no/such/ring.edges"), lambda: parse_spec("no/such/ring.edges")])
def test_missing_file_is_refused(call: Callable[[], object]) -> None:
    """A missing file is named in the error, whether loaded directly or through a spec."""
    assert refusal(call) == "topology file not found: no/such/ring.edges"


# --- specs -----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("spec", "n", "name"),
    [
        ("ring", 16, "ring-16"),
        ("  RING  ", 8, "ring-8"),
        ("complete", 5, "complete-5"),
        ("star", 6, "star-6"),
        ("exponential", 16, "exponential-16"),
        ("exp", 16, "exponential-16"),
        ("torus", 16, "torus-4x4"),
        ("torus:3x5", None, "torus-3x5"),
        ("torus:3x5", 15, "torus-3x5"),
        ("torus:rows=3,cols=4", None, "torus-3x4"),
        ("er:p=0.3", 20, "erdos-renyi-20-p0.3"),
        ("erdos-renyi", 20, "erdos-renyi-20-p0.3"),
        ("ba:m=3", 20, "barabasi-albert-20-m3"),
        ("regular:d=4", 16, "regular-16-d4"),
        ("regular", 16, "regular-16-d4"),
    ],
)
def test_parse_spec_forms(spec: str, n: int | None, name: str) -> None:
    """Every documented spec form builds the named topology."""
    assert parse_spec(spec, n).name == name


def test_parse_spec_reads_a_file_and_names_it_after_the_stem() -> None:
    """A path to an existing file is loaded; --nodes equal to the file's N is accepted."""
    topology = parse_spec(str(TOPOLOGIES / "ring-16.edges"), n=16)
    assert (topology.name, topology.n) == ("ring-16", 16)


@pytest.mark.parametrize(
    ("spec", "n", "expected"),
    [
        ("rnig", 16, "unknown topology 'rnig' (did you mean 'ring'?); known: ring, torus"),
        ("ring", None, "topology 'ring' needs --nodes"),
        ("er:p", 16, "cannot parse 'p'; write key=value with key in p"),
        ("torus:4by4", 16, "cannot parse '4by4'; write rows x cols (4x4) or key=value with key in rows, cols"),
        ("ring:8", 8, "topology 'ring' takes no parameters, got '8'"),
        ("ba:m=two", 16, "m must be a number, got 'two'"),
        ("regular:k=4", 16, "has no parameter 'k'; it takes d"),
        ("torus:3x3", 16, "torus 3x3 has 9 nodes, not 16"),
        ("", None, "topology spec is empty"),
        (str(TOPOLOGIES / "ring-16.edges"), 32, "--nodes 32 is larger than topology file ring-16.edges (16 nodes)"),
        (str(TOPOLOGIES / "ring-16.edges"), 8, "--nodes 8 is smaller than topology file ring-16.edges (16 nodes)"),
    ],
)
def test_bad_specs_are_refused_in_one_line(spec: str, n: int | None, expected: str) -> None:
    """Unknown kinds (with a suggestion), missing --nodes, bad parameters and a mismatched N are refused."""
    assert expected in refusal(lambda: parse_spec(spec, n))


# --- describe and draw -------------------------------------------------------------------------------


def test_describe_reports_size_degrees_and_spectral_gap() -> None:
    """describe() gives nodes, edges, the degree histogram, the diameter and the spectral gap."""
    text = describe(generate("ring", 16))

    for fragment in [
        "ring-16",
        "nodes         16",
        "edges         16",
        "degree 2: 16 nodes",
        "(regular)",
        "diameter      8",
        "metropolis (symmetric, doubly stochastic)",
        "spectral gap  0.0507",
    ]:
        assert fragment in text


def test_describe_explains_unusable_weights_instead_of_failing() -> None:
    """describe() with uniform weights on an irregular graph says why they cannot be used."""
    text = describe(load(TOPOLOGIES / "wan-8.graphml"), "uniform")

    assert "uniform: not usable" in text and "spectral gap" not in text
    assert "edge data     bandwidth_mbit, delay_ms, jitter_ms, loss (on 12 of 12 edges)" in text


@pytest.mark.parametrize(
    ("topology", "values", "highlight"),
    [
        (generate("torus", 16), None, ()),
        (generate("ba", 32), {i: i / 32 for i in range(20)}, (3, 5)),
        (generate("star", 9), {i: 0.5 for i in range(9)}, (0,)),
        (generate("regular", 80), None, (1,)),
    ],
    ids=["torus-grid", "ba-spring-values", "star-constant-values", "regular-80-no-labels"],
)
def test_draw_writes_a_non_blank_png(
    tmp_path: Path, topology: Topology, values: dict[int, float] | None, highlight: tuple[int, ...]
) -> None:
    """draw() writes a 600x600 PNG with something on it, for each layout and with or without node values."""
    path = tmp_path / "graph.png"

    draw(topology, path, node_values=values, title="test", highlight=highlight)

    image = matplotlib.image.imread(path)
    assert image.shape[:2] == (600, 600)
    assert image[..., :3].std() > 0


def test_draw_refuses_nodes_outside_the_topology(tmp_path: Path) -> None:
    """Values or highlights for nodes that do not exist are a mistake, not something to skip silently."""
    assert "node 9 is not in topology ring-4" in refusal(lambda: draw(generate("ring", 4), tmp_path / "x.png", highlight=[9]))


# --- JSON and the NetworkX-free path (what node processes use) -------------------------------------


def test_json_round_trip_keeps_name_edges_edge_data_and_node_labels(tmp_path: Path) -> None:
    """A JSON copy is the same topology: name, edges, every edge's data and the GraphML names kept as labels."""
    cities = Topology(nx.Graph([("paris", "berlin", {"delay_ms": 12.5, "loss": 0.01}), ("berlin", "rome")]), "cities")
    save(cities, tmp_path / "cities.json")

    again = load(tmp_path / "cities.json")
    assert again == cities and again.name == "cities"
    assert [again.node_attributes(i) for i in range(3)] == [{"label": "berlin"}, {"label": "paris"}, {"label": "rome"}]
    assert again.edge_attributes(0, 1) == {"delay_ms": 12.5, "loss": 0.01} and again.edge_attributes(0, 2) == {}
    assert nx.utils.graphs_equal(again.graph, cities.graph)


def test_from_edges_validates_like_the_constructor() -> None:
    """The NetworkX-free constructor refuses what Topology(graph) refuses, and merges (u, v) with (v, u)."""
    assert "self loop at node 2" in refusal(lambda: Topology.from_edges(3, [(0, 1), (1, 2), (2, 2)], "t"))
    assert "disconnected: 2 components, e.g. nodes {0, 1} and {2, 3}" in refusal(lambda: Topology.from_edges(4, [(0, 1), (2, 3)], "t"))
    assert "node ids must be 0..2: unexpected 3" in refusal(lambda: Topology.from_edges(3, [(0, 1), (1, 3)], "t"))
    assert "has no nodes" in refusal(lambda: Topology.from_edges(0, [], "t"))

    pair = Topology.from_edges(2, [(0, 1, {"loss": 0.1}), (1, 0, {"delay_ms": 3.0})], "pair")
    assert pair.edges == [(0, 1)] and pair.edge_attributes(1, 0) == {"loss": 0.1, "delay_ms": 3.0}
    assert pair == Topology(nx.Graph([(0, 1)]), "pair")


def test_topology_holds_no_graph_until_asked_and_pickles() -> None:
    """.graph is built on first use (frozen, with the data); a topology survives pickling (multiprocessing)."""
    import pickle

    wan = load(TOPOLOGIES / "wan-8.graphml")
    plain = Topology.from_edges(wan.n, [(u, v, wan.edge_attributes(u, v)) for u, v in wan.edges], wan.name)
    assert object.__getattribute__(plain, "_graph") is None
    assert nx.is_frozen(plain.graph) and plain.graph.edges[0, 1] == wan.edge_attributes(0, 1)
    again = pickle.loads(pickle.dumps(wan))
    assert again == wan and all(again.edge_attributes(u, v) == wan.edge_attributes(u, v) for u, v in wan.edges)
    with pytest.raises(AttributeError):
        wan.n = 3  # type: ignore[misc]


def test_json_topology_loads_without_importing_networkx(tmp_path: Path) -> None:
    """What a node does with the launcher's topology.json (parse_spec, neighbours, weights) never imports NetworkX."""
    import subprocess
    import sys

    save(load(TOPOLOGIES / "wan-8.graphml"), tmp_path / "topology.json")
    code = (
        "import sys\n"
        "from gossip.topology import parse_spec\n"
        f"t = parse_spec({str(tmp_path / 'topology.json')!r}, n=8)\n"
        "print(t.name, t.neighbours(0), round(sum(t.mixing_weights(0).values()), 9), t.edge_attributes(0, 1)['delay_ms'])\n"
        "print('networkx' in sys.modules)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.splitlines()
    wan = load(TOPOLOGIES / "wan-8.graphml")
    assert out[0] == f"wan-8 {wan.neighbours(0)} 1.0 {wan.edge_attributes(0, 1)['delay_ms']}"
    assert out[1] == "False"


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("{not json", "cannot read t.json as JSON"),
        ('{"n": 3, "edges": []}', "not a gossip topology file"),
        ('{"gossip_topology": 1, "n": "3", "edges": []}', '"n" must be a positive integer'),
        ('{"gossip_topology": 1, "n": 3, "edges": [[0, 1], [1]]}', '"edges" must be a list of [u, v] or [u, v, {data}]'),
        ('{"gossip_topology": 1, "n": 3, "edges": [[0, 1], [1, 2]], "nodes": {"x": {}}}', "\"nodes\" key 'x' is not a node id"),
        ('{"gossip_topology": 1, "n": 3, "edges": [[0, 1], [1, "2"]]}', "node ids must be 0..2: unexpected '2'"),
        ('{"gossip_topology": 1, "n": 3, "edges": [[0, 1]]}', "disconnected"),
    ],
)
def test_bad_json_topologies_are_refused_in_one_line(tmp_path: Path, text: str, expected: str) -> None:
    """A hand-edited JSON topology that is not valid is one TopologyError line naming the problem."""
    (tmp_path / "t.json").write_text(text)
    assert expected in refusal(lambda: load(tmp_path / "t.json"))
