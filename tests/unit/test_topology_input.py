"""Hostile and mistaken topology input: every file and spec is bounded before anything of its size is built.

Each refusal is one TopologyError line naming what is wrong; none is a traceback, an exhausted memory
or a hang. Fixtures are written here, small: a cap is exercised with the real constant where the input
that crosses it is cheap to write, and with a lowered cap (monkeypatched) where it is not.
"""

from __future__ import annotations

import os
import tracemalloc
from collections.abc import Callable
from pathlib import Path

import pytest

from gossip.errors import TopologyError
from gossip.topology import (
    DESCRIBE_MAX_NODES,
    MAX_DEPTH,
    MAX_EDGES,
    MAX_FILE_BYTES,
    MAX_NODES,
    Topology,
    describe,
    generate,
    load,
    parse_spec,
    save,
)
from gossip.topology import files as topo  # the file caps live (and are lowered here) in the reader

GRAPHML_HEAD = '<graphml xmlns="http://graphml.graphdrawing.org/xmlns"><graph edgedefault="undirected">'
GRAPHML_TAIL = "</graph></graphml>"


def refusal(call: Callable[[], object]) -> str:
    """Run ``call``, expect a TopologyError, and return its message: one line, and short."""
    with pytest.raises(TopologyError) as info:
        call()
    message = str(info.value)
    assert message and "\n" not in message and len(message) < 400, message
    return message


def write(tmp_path: Path, name: str, text: str) -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


def json_doc(body: str) -> str:
    return '{"gossip_topology": 1, ' + body + "}"


# --- counts read from a file -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "text", "expected"),
    [
        ("n.json", json_doc('"n": 1000000000, "edges": [[0, 1]]'), '"n" is 1,000,000,000; gossip runs at most 10,000 nodes'),
        ("n.json", json_doc('"n": 123456789012345678901234567890, "edges": [[0, 1]]'), '"n" is a 30-digit number'),
        ("n.json", json_doc('"n": 1e9, "edges": [[0, 1]]'), '"n" must be a positive integer, got 1000000000.0'),
        ("n.json", json_doc('"n": true, "edges": [[0, 1]]'), '"n" must be a positive integer, got True'),
        ("n.edges", "1000000000\n0 1\n", "line 1: node count 1,000,000,000; gossip runs at most 10,000 nodes"),
        ("n.edges", "9" * 5000 + "\n0 1\n", "line 1: node count has 5,000 digits"),
        ("n.edgelist", "0 1\n1 99999999999999999999999\n", "line 2: node id a 23-digit number is outside 0..9,999"),
        ("n.edgelist", "0 1\n1 " + "9" * 5000 + "\n", "line 2: node ids must be integers"),
        (
            "n.graphml",
            GRAPHML_HEAD + '<node id="0"/><node id="' + "1" * 5000 + '"/>' + GRAPHML_TAIL,
            "has 5,000 digits; ids are 0..9,999 at most",
        ),
        ("n.json", json_doc('"n": 2, "edges": [[0, 1]], "nodes": {"' + "1" * 5000 + '": {}}'), "has 5,000 digits"),
        ("n.json", json_doc('"n": 2, "edges": [[0, 123456789012345678901234567890]]'), "unexpected a 30-digit number"),
    ],
    ids=[
        "json-1e9-int",
        "json-30-digits",
        "json-float",
        "json-bool",
        "edges-count",
        "edges-count-5000-digits",
        "edgelist-23-digit-id",
        "edgelist-5000-digit-id",
        "graphml-5000-digit-id",
        "json-node-key-5000-digits",
        "json-30-digit-edge",
    ],
)
def test_a_count_or_id_out_of_range_is_refused_before_anything_is_built(tmp_path: Path, name: str, text: str, expected: str) -> None:
    """Node counts and ids from every format are integers within MAX_NODES, checked before a structure of
    that size exists: a 1e9 or 30-digit "n" used to exhaust memory, a 5000-digit id to raise ValueError."""
    path = write(tmp_path, name, text)

    assert expected in refusal(lambda: load(path))


def test_more_edges_than_max_edges_are_refused_while_parsing(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A text edge list stops at the edge past MAX_EDGES (lowered to 5 here), naming the line."""
    monkeypatch.setattr(topo, "MAX_EDGES", 5)
    path = write(tmp_path, "many.edgelist", "".join(f"0 {j}\n" for j in range(1, 8)))

    assert "many.edgelist line 6: more than 5 edges" in refusal(lambda: load(path))


def test_a_json_edge_list_longer_than_twice_max_edges_is_refused(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """JSON's "edges" is counted before a single edge is validated (each may be listed in both directions)."""
    monkeypatch.setattr(topo, "MAX_EDGES", 2)
    path = write(tmp_path, "e.json", json_doc('"n": 3, "edges": [[0, 1], [1, 2], [2, 0], [0, 2], [1, 0]]'))

    assert '"edges" lists 5 edges; gossip runs at most 2' in refusal(lambda: load(path))


def test_from_edges_and_the_constructor_refuse_more_than_max_nodes() -> None:
    """The library's own entry points hold the same bound as the files: no 0..N-1 adjacency of a huge N."""
    import networkx as nx

    assert "has 10,001 nodes; gossip runs at most 10,000" in refusal(lambda: Topology.from_edges(MAX_NODES + 1, [(0, 1)], "big"))
    assert "gossip runs at most 10,000" in refusal(lambda: Topology(nx.empty_graph(MAX_NODES + 1), "big"))


# --- nesting ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("depth", [MAX_DEPTH + 1, 100_000])
def test_json_nested_deeper_than_the_cap_is_refused_before_decoding(tmp_path: Path, depth: int) -> None:
    """A JSON topology nested 100 000 deep used to raise RecursionError out of json.loads."""
    path = write(tmp_path, "deep.json", json_doc('"n": 2, "edges": ' + "[" * depth + "]" * depth))

    assert f"cannot read deep.json as JSON: nested {depth + 1} deep, deeper than {MAX_DEPTH}" in refusal(lambda: load(path))


def test_json_brackets_inside_strings_are_not_nesting(tmp_path: Path) -> None:
    """The depth scan skips string contents (escaped quotes included): a name full of brackets is data."""
    label = '[[[[\\"{{{{' * 20
    path = write(tmp_path, "s.json", json_doc(f'"n": 2, "edges": [[0, 1, {{"note": "{label}"}}]]'))

    assert load(path).edge_attributes(0, 1)["note"] == label.replace('\\"', '"')


def test_json_with_more_values_than_the_cap_is_refused_before_decoding(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Containers and commas are counted before json.loads: 64 MiB of '{},' decodes to 1.7 GB of dicts."""
    monkeypatch.setattr(topo, "_MAX_JSON_VALUES", 100)
    path = write(tmp_path, "wide.json", json_doc('"n": 2, "edges": [[0, 1]], "pad": [' + "{}," * 100 + "{}]"))

    assert "more than 100 values" in refusal(lambda: load(path))


@pytest.mark.parametrize(
    ("data", "why"),
    [
        ("{'a': " + "-" * 900 + "1}", "a chain of signs (the parser recursed through 900 UnaryOps)"),
        ("{'a': 1" + "+1" * 450 + "}", "a chain of binary additions"),
        ("{'a': " + "not " * 200 + "1}", "a name other than True/False/None"),
        ("{'a': " + "[" * 9 + "]" * 9 + "}", "lists nested 10 deep"),
        ("{'a': " + "[1," * 300 + "]" * 300 + "}", "longer than the cap (the parser ran out of stack: MemoryError)"),
        ("{'a': True.real}", "an attribute"),
        ("{'a': (1, 2) * 3}", "an operator"),
        ("{'a': 1e5, 'b': -2, 'c': [+1, 'x'], 'd': None}", None),
    ],
    ids=["signs", "additions", "not", "depth", "long", "attribute", "operator", "plain"],
)
def test_nx_edge_data_is_bounded_before_literal_eval(tmp_path: Path, data: str, why: str | None) -> None:
    """Edge data literals are at most 1 000 characters of plain tokens nested at most 8 deep; deeper ones
    made ast.literal_eval raise RecursionError or MemoryError, depending on the caller's stack."""
    path = write(tmp_path, "d.edgelist", f"0 1 {data}\n1 2\n")

    if why is None:
        assert load(path).edge_attributes(0, 1) == {"a": 1e5, "b": -2, "c": [1, "x"], "d": None}
    else:
        assert "d.edgelist line 1: edge data" in refusal(lambda: load(path)), why


def test_graphml_nested_graphs_deeper_than_the_cap_are_refused(tmp_path: Path) -> None:
    """networkx recurses once per nested <graph>: 2000 of them raised RecursionError."""
    path = write(tmp_path, "deep.graphml", GRAPHML_HEAD + '<node id="a"><graph>' * 2000 + "</graph></node>" * 2000 + GRAPHML_TAIL)

    assert f"cannot read deep.graphml as GraphML: elements nested deeper than {MAX_DEPTH}" in refusal(lambda: load(path))


def test_graphml_entity_declarations_are_refused(tmp_path: Path) -> None:
    """No DOCTYPE entities (billion laughs): GraphML needs none, so none is expanded."""
    doctype = '<?xml version="1.0"?><!DOCTYPE g [<!ENTITY a "aaaa"><!ENTITY b "&a;&a;&a;&a;">]>'
    path = write(tmp_path, "lol.graphml", doctype + GRAPHML_HEAD + '<node id="&b;"/>' + GRAPHML_TAIL)

    assert "declares an XML entity" in refusal(lambda: load(path))


def test_graphml_with_more_elements_than_the_cap_is_refused_before_networkx_parses_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Elements are counted by a streaming pass; NetworkX's tree costs ~100 bytes an element."""
    monkeypatch.setattr(topo, "_MAX_XML_ELEMENTS", 50)
    path = write(tmp_path, "wide.graphml", GRAPHML_HEAD + "<x/>" * 60 + GRAPHML_TAIL)

    assert "more than 50 elements" in refusal(lambda: load(path))


def test_text_files_with_too_many_lines_or_too_long_a_line_are_refused(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Lines are counted before they are split (every line break splitlines() knows), and each is at most 64 KiB."""
    long = write(tmp_path, "long.edges", "3\n0 1 " + "2 " * 40_000 + "\n")
    assert "long.edges line 2: longer than 65,536 characters" in refusal(lambda: load(long))
    monkeypatch.setattr(topo, "_MAX_TEXT_LINES", 10)
    for name, sep in (("lf.edgelist", "\n"), ("cr.edgelist", "\r"), ("ff.edgelist", "\x0c")):
        assert "has more than 10 lines" in refusal(lambda: load(write(tmp_path, name, sep.join(["0 1"] * 11)))), name  # noqa: B023


# --- names -----------------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["../../etc", "a/b", "a\\\\b", ".hidden", "x" * 65, "tab\\there", ""])
def test_a_name_from_a_file_that_could_not_name_a_directory_is_refused(tmp_path: Path, name: str) -> None:
    """The name names the run directory: '../../etc' would put a run outside --out-dir."""
    path = write(tmp_path, "t.json", json_doc(f'"name": "{name}", "n": 2, "edges": [[0, 1]]'))

    assert '"name"' in refusal(lambda: load(path))


def test_a_name_with_spaces_and_punctuation_is_a_name(tmp_path: Path) -> None:
    """Tools name graphs "My Network (v2)": that still names a directory, so it is kept."""
    path = write(tmp_path, "t.json", json_doc('"name": "My Network (v2)", "n": 2, "edges": [[0, 1]]'))

    assert load(path).name == "My Network (v2)"


def test_a_graphml_name_attribute_is_checked_the_same_way(tmp_path: Path) -> None:
    """GraphML's graph-level name is a file's word too."""
    key = '<key id="n" for="graph" attr.name="name" attr.type="string"/>'
    path = write(
        tmp_path,
        "t.graphml",
        GRAPHML_HEAD.replace("<graph ", key + "<graph ")
        + '<data key="n">../up</data><node id="0"/><node id="1"/><edge source="0" target="1"/>'
        + GRAPHML_TAIL,
    )

    assert "the graph's name '../up'" in refusal(lambda: load(path))


# --- what is read at all ---------------------------------------------------------------------------------


@pytest.mark.timeout(30)
def test_a_fifo_is_refused_without_blocking(tmp_path: Path) -> None:
    """Opening a FIFO for reading blocks until a writer comes; the loader opens it non-blocking and refuses it."""
    fifo = tmp_path / "t.json"
    os.mkfifo(fifo)

    assert "is not a regular file" in refusal(lambda: load(fifo))
    assert "is not a regular file" in refusal(lambda: parse_spec(str(fifo)))


def test_a_directory_and_a_device_are_refused(tmp_path: Path) -> None:
    """A directory named like a topology file, or a link to /dev/zero (which never ends), is one line."""
    (tmp_path / "dir.json").mkdir()
    (tmp_path / "zero.edges").symlink_to("/dev/zero")

    assert "is a directory" in refusal(lambda: parse_spec(str(tmp_path / "dir.json")))
    assert "is not a regular file" in refusal(lambda: load(tmp_path / "zero.edges"))


def test_a_file_larger_than_the_cap_is_refused_before_it_is_read(tmp_path: Path) -> None:
    """The size comes from fstat: a sparse file of MAX_FILE_BYTES + 1 is refused without reading a byte."""
    path = tmp_path / "huge.edgelist"
    with open(path, "wb") as handle:
        handle.truncate(MAX_FILE_BYTES + 1)
    tracemalloc.start()
    try:
        message = refusal(lambda: load(path))
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()

    assert "larger than 64 MiB, the most gossip reads" in message
    assert peak < 1 << 20, peak


def test_save_refuses_json_that_load_would_refuse(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The launcher never writes a topology.json its nodes could not read."""
    monkeypatch.setattr(topo, "MAX_FILE_BYTES", 100)

    assert "as JSON, more than the 100 bytes load() reads" in refusal(lambda: save(generate("ring", 40), tmp_path / "t.json"))
    assert not (tmp_path / "t.json").exists()


# --- specs and generators --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("spec", "n", "expected"),
    [
        ("torus:100000x100000", None, "topology 'torus': rows must be in 1..10,000, got 100,000"),
        ("torus:3x" + "9" * 5000, None, "cols has 5,000 digits"),
        ("torus:rows=1e200,cols=1e200", None, "rows must be in 1..10,000, got a 200-digit number"),
        ("torus:rows=inf,cols=3", None, "rows must be an integer, got inf"),
        ("ring", 10**30, "topology 'ring': a 31-digit number nodes; gossip runs at most 10,000"),
        ("ring", MAX_NODES + 1, "10,001 nodes; gossip runs at most 10,000"),
        ("complete", 5_000, "would have about 12,497,500 edges; gossip runs at most 500,000"),
        ("er:p=1", 2_000, "'erdos-renyi' on 2,000 nodes would have about 1,999,000 edges"),
        ("regular:d=1000000", 100, "d must be in 1..10,000, got 1,000,000"),
        ("ba:m=nan", 100, "m must be an integer, got nan"),
        ("er:p=inf", 100, "p must be finite, got inf"),
        ("x" * 5000, 8, "unknown topology 'xxxxxxxx"),
        ("a/" * 3000 + "t.json", None, "topology file not found"),
    ],
    ids=[
        "torus-huge",
        "torus-5000-digits",
        "torus-1e200",
        "torus-inf",
        "ring-1e30",
        "ring-max+1",
        "complete-5000",
        "er-dense",
        "regular-huge-d",
        "ba-nan",
        "er-inf",
        "long-name",
        "long-path",
    ],
)
def test_a_spec_too_large_is_refused_before_building(spec: str, n: int | None, expected: str) -> None:
    """Generator sizes are integers within MAX_NODES and the graph within MAX_EDGES, checked before building:
    torus:100000x100000 used to build a 10^10-node grid; rows=1e200 raised OverflowError."""
    assert expected in refusal(lambda: parse_spec(spec, n))


@pytest.mark.parametrize(("kind", "params"), [("regular", {"d": True}), ("torus", {"rows": "4"}), ("ba", {"m": 2.5})])
def test_generator_parameters_are_numbers_of_the_right_kind(kind: str, params: dict[str, object]) -> None:
    """generate() is an API too: a bool, a string or a fraction where an integer is meant is one line naming the key."""
    key = next(iter(params))

    assert key in refusal(lambda: generate(kind, 16, **params))  # type: ignore[arg-type]


def test_the_largest_topology_is_described_without_a_dense_matrix() -> None:
    """Above DESCRIBE_MAX_NODES, describe skips the diameter and spectrum (O(N^3): minutes at 10 000) and
    builds no N×N matrix (800 MB at 10 000); tracemalloc sees numpy's allocations."""
    ring = generate("ring", MAX_NODES)
    tracemalloc.start()
    try:
        text = describe(ring)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()

    assert f"not computed above {DESCRIBE_MAX_NODES:,} nodes" in text and "10000" in text
    assert peak < 50 << 20, peak


def test_the_documented_limits_are_the_codes() -> None:
    """topologies/README.md states every cap; a change to a constant that leaves the table behind fails here."""
    text = (Path(__file__).resolve().parents[2] / "topologies" / "README.md").read_text()
    stated = [
        f"{MAX_NODES:,} (`MAX_NODES`)",
        f"{MAX_EDGES:,} (`MAX_EDGES`)",
        f"at most {MAX_FILE_BYTES >> 20} MiB",
        f"nested at most {MAX_DEPTH} deep, at most {topo._MAX_JSON_VALUES:,} containers",
        f"at most {topo._MAX_XML_ELEMENTS:,} elements",
        f"at most {topo._MAX_TEXT_LINES:,} lines of at most {topo._MAX_LINE_CHARS:,} characters",
        f"at most {topo._MAX_EDGE_DATA_CHARS:,} characters",
        f"nested at most {topo._MAX_EDGE_DATA_DEPTH} deep",
        f"up to {DESCRIBE_MAX_NODES:,} nodes",
    ]
    missing = [s for s in stated if s not in text]
    assert not missing, missing
