"""Topology files: gossip's JSON, GraphML and three text edge formats, read and written within fixed caps.

:func:`load` tells the formats apart by suffix and content (see ``topologies/README.md``); :func:`save`
picks one by suffix. Every file is bounded before anything of its size is built: it is read only if it
is a regular file of at most :data:`MAX_FILE_BYTES`, and its structure (JSON nesting and values, XML
elements and depth, text lines, edge-data literals) must be within the caps below. So a hostile or
mistaken file costs one :class:`~gossip.errors.TopologyError` line, never a traceback, an exhausted
memory or a hang. The JSON format, which ``gossip launch`` hands its nodes, is read without NetworkX.
"""

from __future__ import annotations

import ast
import io
import json
import re
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from gossip.errors import TopologyError
from gossip.inputs import clip, load_json, quote, read_capped, size_text
from gossip.topology.checks import ID_LIMIT, MAX_ID_DIGITS, as_int, count_text, need, shown
from gossip.topology.graph import MAX_EDGES, MAX_NODES, Topology, networkx

if TYPE_CHECKING:
    import networkx as nx

__all__ = ["FILE_SUFFIXES", "JSON_FORMAT", "MAX_DEPTH", "MAX_FILE_BYTES", "load", "save"]

FILE_SUFFIXES = frozenset({".graphml", ".json", ".edges", ".edgelist", ".txt", ".adjacency", ".adj"})
"""Suffixes that make a spec a file path even before the file is found."""
JSON_FORMAT = 1
"""Version of the JSON topology format (the ``gossip_topology`` key); see ``topologies/README.md``."""

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
_NAME = re.compile(r"[^\s./\\][^/\\\x00-\x1f\x7f]{0,63}")  # a name from a file names the run directory


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
    need(bool(_NAME.fullmatch(name)), f"{filename}: {what} {quote(name)} cannot name a run directory ({rule})")
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
        return networkx().read_graphml(io.BytesIO(data))
    except (ET.ParseError, networkx().NetworkXError, KeyError, ValueError, TypeError) as exc:
        first = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise TopologyError(f"cannot read {filename} as GraphML: {clip(first)}") from None


def _from_json(data: bytes, path: Path) -> Topology:
    """gossip's own format: ``{"gossip_topology": 1, "name", "n", "edges": [[u, v] or [u, v, {data}]], "nodes": {id: {data}}}``."""
    doc = load_json(data, max_depth=MAX_DEPTH, max_values=_MAX_JSON_VALUES, error=TopologyError, where=f"cannot read {path.name} as JSON")
    what = f'{path.name} is not a gossip topology file (a JSON object with "gossip_topology": {JSON_FORMAT})'
    need(isinstance(doc, dict) and type(doc.get("gossip_topology")) is int and doc["gossip_topology"] == JSON_FORMAT, what)
    n, name, edges, nodes = doc.get("n"), doc.get("name"), doc.get("edges"), doc.get("nodes", {})
    need(type(n) is int and n > 0, f'{path.name}: "n" must be a positive integer, got {shown(n)}')
    need(n <= MAX_NODES, f'{path.name}: "n" is {count_text(n)}; gossip runs at most {MAX_NODES:,} nodes')
    need(name is None or isinstance(name, str), f'{path.name}: "name" must be a string, got {shown(name)}')
    name = path.stem if name is None else _file_name(name, path.name, '"name"')
    need(
        isinstance(edges, list) and all(isinstance(e, list) and (len(e) == 2 or (len(e) == 3 and isinstance(e[2], dict))) for e in edges),
        f'{path.name}: "edges" must be a list of [u, v] or [u, v, {{data}}]',
    )
    need(len(edges) <= 2 * MAX_EDGES, f'{path.name}: "edges" lists {len(edges):,} edges; gossip runs at most {MAX_EDGES:,}')
    need(isinstance(nodes, dict) and all(isinstance(d, dict) for d in nodes.values()), f'{path.name}: "nodes" must map ids to {{data}}')
    node_data: dict[int, dict[str, Any]] = {}
    for key, value in nodes.items():
        i = as_int(key, path.name)
        need(i is not None, f'{path.name}: "nodes" key {quote(key)} is not a node id')
        node_data[int(i)] = value  # type: ignore[arg-type]
    return Topology.from_edges(n, [tuple(e) for e in edges], name, node_data)


def _parse_text(text: str, filename: str) -> nx.Graph:
    """Detect and parse one of the three text formats; the rule is spelled out in topologies/README.md."""
    # Count lines as splitlines() will cut them, before it makes a list of them ("\r\n" is one break).
    breaks = sum(text.count(c) for c in "\n\r\x0b\x0c\x1c\x1d\x1e\x85\u2028\u2029") - text.count("\r\n")
    need(breaks < _MAX_TEXT_LINES, f"{filename} has more than {_MAX_TEXT_LINES:,} lines")
    # Comment-only lines vanish; blank lines stay, because in the adjacency format they are nodes.
    lines = [(k, raw.split("#", 1)[0].strip()) for k, raw in enumerate(text.splitlines(), 1) if not raw.lstrip().startswith("#")]
    long = next(((k, line) for k, line in lines if len(line) > _MAX_LINE_CHARS), None)
    need(long is None, f"{filename} line {long[0] if long else 0}: longer than {_MAX_LINE_CHARS:,} characters")
    while lines and not lines[0][1]:
        lines.pop(0)
    need(bool(lines), f"{filename} is empty")
    first = lines[0][1].split()
    if len(first) != 1:
        return _parse_nx_edgelist(lines, filename)
    head = f"{filename} line {lines[0][0]}"
    need(first[0].isascii() and first[0].isdigit(), f"{head}: expected a node count or 'u v', got {quote(lines[0][1])}")
    need(
        len(first[0].lstrip("0")) <= MAX_ID_DIGITS,
        f"{head}: node count has {len(first[0]):,} digits; gossip runs at most {MAX_NODES:,} nodes",
    )
    n, rest = int(first[0]), lines[1:]
    need(n >= 1, f"{head}: node count must be >= 1")
    need(n <= MAX_NODES, f"{head}: node count {n:,}; gossip runs at most {MAX_NODES:,} nodes")
    while len(rest) > n and not rest[-1][1]:
        rest.pop()  # trailing blank lines are not nodes
    graph = networkx().empty_graph(n)
    adjacency, why_not = _as_adjacency(rest, n) if len(rest) == n else (None, "")
    if adjacency is not None:
        edges = sum(map(len, adjacency)) // 2
        need(edges <= MAX_EDGES, f"{filename} has {edges:,} edges; gossip runs at most {MAX_EDGES:,}")
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
    graph, count = networkx().Graph(), 0
    for k, line in lines:
        if not line:
            continue
        parts = line.split(maxsplit=2)
        need(len(parts) >= 2, f"{filename} line {k}: expected 'u v [data]', got {quote(line)}")
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
        if not -ID_LIMIT < i < ID_LIMIT:  # before a message or a set of ids spells it out
            raise TopologyError(f"{filename} line {k}: node id {count_text(i)} is outside 0..{MAX_NODES - 1:,}")
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
        named = networkx().Graph(topology.graph)
        named.graph["name"] = topology.name  # so a copy in a run directory still loads as e.g. "torus-4x4"
        networkx().write_graphml(named, path)
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
