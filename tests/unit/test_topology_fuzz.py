"""Property: any file handed to the topology loader gives a valid Topology or one TopologyError line.

Hypothesis writes generated files in every format the loader reads (gossip JSON, GraphML, the three text
formats, raw bytes): random structure, deep nesting, huge and negative numbers, wrong types, odd strings,
truncation. Whatever comes in, ``load`` returns a topology within MAX_NODES/MAX_EDGES or raises
TopologyError with a short single-line message: never another exception. Each example runs under a
tracemalloc peak bound and a hypothesis deadline, and the whole test under an address-space limit
(RLIMIT_AS, 1 GiB above what the process already maps), so a regression that tries to build a graph of
10^30 nodes fails with MemoryError instead of taking the machine's memory.
"""

from __future__ import annotations

import contextlib
import json
import resource
import tracemalloc
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import networkx  # noqa: F401  (imported here, so the first example's deadline does not pay for it)
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from gossip.errors import TopologyError
from gossip.topology import MAX_EDGES, MAX_NODES, Topology, load

PEAK_BYTES = 64 << 20  # per example: the inputs are a few KB; a regression that builds by N allocates far more
SETTINGS = settings(
    max_examples=120,
    deadline=timedelta(seconds=5),  # generous: an example takes milliseconds, but this machine is shared and loaded
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)

# --- strategies ------------------------------------------------------------------------------------------


def mostly(usual: st.SearchStrategy[object], *odd: st.SearchStrategy[object]) -> st.SearchStrategy[object]:
    """``usual`` three times in four, else one of ``odd``: enough valid structure to reach the deeper checks."""
    return st.integers(0, 3).flatmap(lambda k: usual if k else st.one_of(*odd))


huge = st.integers(min_value=-(10**40), max_value=10**40)
small = st.integers(min_value=-1, max_value=9)
word = st.text("abn_-.0123456789", min_size=1, max_size=8)
odd_text = st.text(st.characters(codec="utf-8", exclude_categories=("Cs",)), max_size=12)
scalar = st.one_of(st.none(), st.booleans(), small, huge, st.floats(allow_nan=True), word, odd_text)
json_value = st.recursive(scalar, lambda inner: st.lists(inner, max_size=4) | st.dictionaries(odd_text, inner, max_size=4), max_leaves=16)
node_id = mostly(small, huge, odd_text, st.floats(), st.booleans(), st.none())


@st.composite
def mutated(draw: st.DrawFn, text: str) -> bytes:
    """``text`` as bytes, maybe cut short, wrapped in deep nesting, or with random bytes spliced in."""
    data = text.encode("utf-8", "surrogatepass")
    how = draw(st.sampled_from(["as-is", "as-is", "truncate", "splice", "nest"]))
    if how == "truncate" and data:
        return data[: draw(st.integers(0, len(data) - 1))]
    if how == "splice":
        at = draw(st.integers(0, len(data)))
        return data[:at] + draw(st.binary(max_size=16)) + data[at:]
    if how == "nest":
        depth = draw(st.integers(1, 5_000))
        opener, closer = draw(st.sampled_from([("[", "]"), ('{"a": ', "}"), ("<n>", "</n>"), ("(", ")")]))
        return (opener * depth).encode() + data + (closer * depth).encode()
    return data


@st.composite
def json_files(draw: st.DrawFn) -> bytes:
    """gossip JSON topologies: plausible ones and broken ones (any key may hold any JSON value)."""
    n = draw(mostly(st.integers(1, 10), huge, json_value))
    edge = mostly(
        st.tuples(node_id, node_id).map(list),
        st.tuples(node_id, node_id, st.dictionaries(odd_text, json_value, max_size=2)).map(list),
        st.lists(json_value, max_size=4),
    )
    edges = draw(mostly(st.lists(edge, max_size=20), json_value))
    doc: dict[str, object] = {"gossip_topology": draw(mostly(st.just(1), json_value)), "n": n, "edges": edges}
    if draw(st.booleans()):
        doc["name"] = draw(mostly(word, odd_text, json_value))
    if draw(st.booleans()):
        doc["nodes"] = draw(
            mostly(
                st.dictionaries(mostly(small.map(str), odd_text, huge.map(str)), st.dictionaries(word, json_value, max_size=2), max_size=4),
                json_value,
            )
        )
    return draw(mutated(json.dumps(doc, allow_nan=True)))


def _attr(value: object) -> str:
    return str(value).replace("&", "&amp;").replace("<", "&lt;").replace('"', "&quot;")


@st.composite
def graphml_files(draw: st.DrawFn) -> bytes:
    """GraphML: random ids (numbers, names, huge digit strings), typed keys with random values, nested graphs."""
    ids = draw(
        mostly(
            st.lists(small.map(str), min_size=1, max_size=12, unique=True),
            st.lists(st.one_of(small.map(str), huge.map(str), word, odd_text, st.just("9" * 5000)), min_size=1, max_size=12),
        )
    )
    types = draw(st.lists(st.sampled_from(["int", "long", "double", "float", "boolean", "string", "nonsense"]), max_size=3))
    keys = "".join(
        f'<key id="d{k}" for="{draw(st.sampled_from(["edge", "node", "graph", "all"]))}" attr.name="{_attr(draw(mostly(word, odd_text)))}" attr.type="{t}"/>'
        for k, t in enumerate(types)
    )
    nodes = "".join(f'<node id="{_attr(i)}"/>' for i in ids)
    edges = []
    for _ in range(draw(st.integers(0, 20))):
        data = "".join(
            f'<data key="d{k}">{_attr(draw(mostly(st.one_of(small, st.floats(0, 100), word), scalar)))}</data>'
            for k in range(len(types))
            if draw(st.booleans())
        )
        source, target = draw(st.sampled_from(ids)), draw(mostly(st.sampled_from(ids), word, odd_text))
        edges.append(f'<edge source="{_attr(source)}" target="{_attr(target)}">{data}</edge>')
    nested = draw(st.integers(0, 3_000)) if draw(st.integers(0, 4)) == 0 else 0
    body = nodes + "".join(edges) + '<node id="deep"><graph>' * nested + "</graph></node>" * nested
    direction = draw(st.sampled_from(["undirected", "directed", "sideways"]))
    text = f'<?xml version="1.0"?><graphml xmlns="http://graphml.graphdrawing.org/xmlns">{keys}<graph edgedefault="{direction}">{body}</graph></graphml>'
    return draw(mutated(text))


literal = st.recursive(
    st.one_of(
        scalar.map(repr), st.sampled_from(["-" * 900 + "1", "1" + "+1" * 400, "not " * 300 + "1", "True.real", "1e-5", "-0x1f", "b'x'"])
    ),
    lambda inner: st.one_of(
        st.lists(inner, max_size=3).map(lambda xs: "[" + ", ".join(xs) + "]"),
        st.lists(st.tuples(odd_text.map(repr), inner), max_size=3).map(lambda kv: "{" + ", ".join(f"{k}: {v}" for k, v in kv) + "}"),
        st.integers(1, 400).map(lambda d: "(" * d + ")" * d),
    ),
    max_leaves=8,
)
token = mostly(small.map(str), huge.map(str), st.just("9" * 5000), word, odd_text.filter(lambda t: t.strip() != ""), literal)


@st.composite
def text_files(draw: st.DrawFn) -> bytes:
    """The three text formats: a first line that may be a count (small or huge), then lines of 0-4 tokens,
    edge data literals (deep, signed, chained), comments, and any line ending."""
    lines = []
    if draw(st.booleans()):
        lines.append(draw(mostly(st.integers(1, 10).map(str), huge.map(str), st.just("9" * 5000))))
    for _ in range(draw(st.integers(0, 25))):
        kind = draw(st.integers(0, 9))
        if kind == 0:
            lines.append("# " + draw(odd_text))
        elif kind == 1:
            lines.append(f"{draw(small)} {draw(small)} {draw(mostly(literal, st.floats().map(str), word))}")
        else:
            lines.append(" ".join(draw(st.lists(token, min_size=kind % 4, max_size=4))))
    return draw(mutated(draw(st.sampled_from(["\n", "\r\n", "\r", "\x0c"])).join(lines)))


# --- the property ----------------------------------------------------------------------------------------


@contextlib.contextmanager
def address_space_limit(extra_bytes: int) -> Iterator[None]:
    """Lower RLIMIT_AS to what the process maps now plus ``extra_bytes``, and put it back afterwards: an
    allocation beyond that is a MemoryError in the test, not the machine's memory."""
    mapped = next(int(line.split()[1]) * 1024 for line in Path("/proc/self/status").read_text().splitlines() if line.startswith("VmSize:"))
    soft, hard = resource.getrlimit(resource.RLIMIT_AS)
    limit = mapped + extra_bytes if hard == resource.RLIM_INFINITY else min(hard, mapped + extra_bytes)
    resource.setrlimit(resource.RLIMIT_AS, (limit, hard))
    try:
        yield
    finally:
        resource.setrlimit(resource.RLIMIT_AS, (soft, hard))


@pytest.fixture(scope="module")
def scratch(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One directory for every example's file (module-scoped: hypothesis reruns the test body, not fixtures)."""
    return tmp_path_factory.mktemp("fuzz")


def loads_or_refuses(path: Path, data: bytes) -> None:
    """The property itself: a valid Topology, or one short TopologyError line; within PEAK_BYTES."""
    path.write_bytes(data)
    tracemalloc.start()
    try:
        try:
            topology = load(path)
        except TopologyError as exc:
            message = str(exc)
            assert message and "\n" not in message and len(message) < 500, message
        else:
            assert isinstance(topology, Topology)
            assert 1 <= topology.n <= MAX_NODES and len(topology.edges) <= MAX_EDGES
            assert all(0 <= u < v < topology.n for u, v in topology.edges)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < PEAK_BYTES, peak


@pytest.mark.parametrize(
    ("suffix", "files"),
    [
        (".json", json_files()),
        (".graphml", graphml_files()),
        (".edgelist", text_files()),
        (".edges", text_files()),
        (".txt", st.binary(max_size=512)),
    ],
    ids=["json", "graphml", "edgelist", "edges", "bytes"],
)
def test_any_generated_file_loads_or_is_refused_in_one_line(scratch: Path, suffix: str, files: st.SearchStrategy[bytes]) -> None:
    """Whatever bytes a topology file holds, the loader answers with a Topology or a TopologyError line, in
    bounded memory (per-example tracemalloc peak, and RLIMIT_AS around the run) and time (the deadline)."""

    @SETTINGS
    @given(data=files)
    def check(data: bytes) -> None:
        loads_or_refuses(scratch / f"t{suffix}", data)

    with address_space_limit(1 << 30):
        check()
