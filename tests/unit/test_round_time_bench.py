"""bench/round_time.py's table: our figures are marked measured now, the peers' are quotes with source and date,
and no figure of ours is divided by a quoted one (the peers do not run in the bench)."""

from __future__ import annotations

import importlib.util
import re
import sys
from types import ModuleType

from tests.conftest import REPO


def _bench() -> ModuleType:
    spec = importlib.util.spec_from_file_location("round_time_bench", REPO / "bench" / "round_time.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up while the class is built
    spec.loader.exec_module(module)
    return module


def _table(bench: ModuleType) -> list[list[str]]:
    """The table for both workloads from made-up figures, as rows of cells (header first, the rule left out)."""
    figures = {
        name: bench.RunFigures(
            name=name,
            nodes=8,
            params=params,
            round_ms=ms,
            phases_ms={},
            cpu_ms=cpu,
            train_cpu_ms=0.1,
            rss_mib=rss,
            wall_s=1.0,
            accuracy=None,
        )
        for name, params, ms, cpu, rss in (("small", 15_010, 2.94, 0.65, 187.0), ("large", 1_011_010, 32.46, 7.65, 243.0))
    }
    lines = bench.figures_table(figures, nodes=8, cores=2, bare_mib=218.0)
    rows = [[c.strip() for c in line.strip("|").split("|")] for line in lines]
    return [rows[0]] + rows[2:]


def test_every_figure_column_says_measured_now_or_quoted_with_source_and_date() -> None:
    """Past workload and params, each column is either ours, measured in this invocation, or a peer's quote naming
    its footnote, its source and its date; a column naming a peer is never marked measured now."""
    bench = _bench()
    header = _table(bench)[0]
    assert header[:2] == ["workload", "params"]
    quoted = re.compile(rf"\(quoted: Q1, {re.escape(bench.TARGETS.short)}, {re.escape(bench.TARGETS.date)}(; Q\d: [^)]+)?\)$")
    for column in header[2:]:
        if any(peer in column for peer in ("decentralizepy", "Murmura", "peers'")):
            assert quoted.search(column), column
        else:
            assert column.endswith("(measured now)"), column


def test_peer_cells_are_the_quoted_figures_unchanged_so_nothing_is_divided_by_them() -> None:
    """The peers' cells hold the source's figures as written and our cells hold our figures: no column is a
    ratio (no '/' or '×' in a header, no cell derived from a quote)."""
    bench = _bench()
    header, *rows = _table(bench)
    assert not any("/" in c.replace("ms/round", "").replace("MiB/node", "") or "×" in c for c in header)
    by_workload = {row[0]: dict(zip(header, row, strict=True)) for row in rows}
    for workload, row in by_workload.items():
        for peer, figures in bench.PEER_MS.items():
            (cell,) = [v for k, v in row.items() if k.startswith(f"{peer} ms/round")]
            assert cell == f"{figures[workload][0]}–{figures[workload][1]}"
        assert row[next(k for k in header if k.startswith("peers' RSS"))] == "260–395"
    assert by_workload["small"]["gossip ms/round (measured now)"] == "2.9"
    assert by_workload["large"]["gossip RSS MiB/node (measured now)"] == "243"


def test_each_quote_mark_has_a_note_with_its_source_date_and_command_and_no_ratio_is_printed() -> None:
    """Every footnote a header names has a line of its own giving the source, date and command, and the notes say
    that no ratio to a peer is printed because no peer ran in this run."""
    bench = _bench()
    notes = bench.quote_notes()
    marks = set(re.findall(r"\b(Q\d)\b", " | ".join(_table(bench)[0])))
    assert marks == {"Q1", "Q2"}
    for mark in marks:
        (line,) = [n for n in notes if n.startswith(f"[{mark}] ")]
        quote = next(q for q in bench.QUOTES if q.mark == mark)
        assert quote.source in line and f"Date: {quote.date}." in line and f"Command: {quote.command}." in line
    assert any(n.startswith("Ratio to a peer: none printed.") for n in notes)
