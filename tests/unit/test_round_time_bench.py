"""bench/round_time.py: its figures are medians with their ranges over repeats, its ratios pair the paths of one
repeat, its CPU comes from /proc over the steady rounds only, and the peers' figures stay quotes, never divided by.
The slow test runs the script itself, on real node processes."""

from __future__ import annotations

import dataclasses
import importlib.util
import math
import os
import re
import subprocess
import sys
import time
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

from gossip.errors import ConfigError
from tests.conftest import REPO, cli_env


def _bench() -> ModuleType:
    spec = importlib.util.spec_from_file_location("round_time_bench", REPO / "bench" / "round_time.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up while the class is built
    spec.loader.exec_module(module)
    return module


BENCH = _bench()
PERFKIT = sys.modules["perfkit"]  # imported by the bench from bench/


def _figures(params: int, round_ms: float, proc_cpu: float, train: float, rss: float = 200.0, **kw: Any) -> Any:
    return PERFKIT.RunFigures(
        name="made up",
        nodes=8,
        params=params,
        round_ms=round_ms,
        phases_ms=kw.pop("phases", dict.fromkeys(PERFKIT.PHASES, 0.1)),
        cpu_ms=kw.pop("cpu_ms", proc_cpu),
        train_cpu_ms=train,
        rss_mib=rss,
        wall_s=1.0,
        accuracy=None,
        proc_cpu_ms=proc_cpu,
        pss_mib=kw.pop("pss", 50.0),
    )


def _runs() -> dict[tuple[str, str], list[Any]]:
    """Two repeats of two paths for both workloads; ipc is 0.9 × tcp's time in every repeat."""
    return {
        ("small", "tcp"): [_figures(15_010, 10.0, 3.0, 1.0), _figures(15_010, 20.0, 4.0, 1.0)],
        ("small", "ipc"): [_figures(15_010, 9.0, 2.5, 1.0), _figures(15_010, 18.0, 3.0, 1.0)],
        ("large", "tcp"): [_figures(1_011_010, 100.0, 20.0, 8.0), _figures(1_011_010, 120.0, 22.0, 8.0)],
        ("large", "ipc"): [_figures(1_011_010, 90.0, 19.0, 8.0), _figures(1_011_010, 108.0, 20.0, 8.0)],
    }


def _rows(lines: list[str]) -> list[dict[str, str]]:
    """A Markdown table as one dict per row, keyed by the header."""
    header, _rule, *rows = ([c.strip() for c in line.strip("|").split("|")] for line in lines)
    return [dict(zip(header, row, strict=True)) for row in rows]


def test_a_spread_is_the_median_and_range_of_the_figures_that_were_measured() -> None:
    """Median and min–max over repeats; a NaN (a run that could not give the figure) is left out, and no figure at
    all prints n/a rather than a number."""
    spread = BENCH.Spread.of([3.0, 1.0, float("nan"), 2.0, 10.0])
    assert (spread.median, spread.low, spread.high) == (2.5, 1.0, 10.0)
    assert BENCH.cell(spread, 1) == "2.5 (1.0–10.0)"
    assert BENCH.Spread.of([float("nan")]) is None and BENCH.cell(None) == "n/a"


def test_ratios_divide_each_repeats_pair_not_the_medians() -> None:
    """Repeat i's shm by repeat i's tcp: load that moved between repeats cancels within a pair, which the ratio of
    the medians would not do (here it would be 1.5, every pair says 2)."""
    spread = BENCH.ratios([2.0, 20.0, 6.0], [1.0, 10.0, 3.0])
    assert (spread.median, spread.low, spread.high) == (2.0, 2.0, 2.0)
    assert BENCH.ratios([1.0], [0.0]) is None


def test_main_table_splits_cpu_into_training_and_the_rest_and_weighs_the_rest_by_that_repeats_copy_floor() -> None:
    """rest = /proc CPU − training per repeat; rest ÷ copies divides by 4 × the one-copy time measured in the same
    repeat; CPU-bound = nodes × CPU / cores; every cell a median with its range."""
    runs = _runs()
    floors = {"small": [0.5, 0.25], "large": [1.0, 1.0]}  # ms per copy, by repeat
    rows = {(r["workload"], r["path"]): r for r in _rows(BENCH.main_table(runs, floors, nodes=8, cores=2))}
    assert list(rows) == list(runs)
    small_tcp = rows[("small", "tcp")]
    assert small_tcp["CPU ms/node-round"] == "3.50 (3.00–4.00)"
    assert small_tcp["rest"] == "2.50 (2.00–3.00)"
    assert small_tcp["rest ÷ copies"] == "2.0 (1.0–3.0)"  # 2 / (4 × 0.5) and 3 / (4 × 0.25)
    assert small_tcp["CPU-bound ms/round"] == "14.00 (12.00–16.00)"
    assert small_tcp["params"] == "15,010" and small_tcp["peak RSS MiB"] == "200 (200–200)"


def test_ratio_table_divides_shm_and_ipc_by_tcp_only_when_tcp_ran() -> None:
    """One row per workload and path against tcp (shm before ipc); without tcp, a line saying why there are none."""
    runs = _runs()
    rows = _rows(BENCH.ratio_table(runs, ["tcp", "ipc"]))
    assert [(r["workload"], r["ratio"]) for r in rows] == [("small", "ipc/tcp"), ("large", "ipc/tcp")]
    assert rows[0]["ms/round"] == "0.90 (0.90–0.90)"
    assert rows[1]["rest CPU"] == "0.89 (0.86–0.92)"  # (19 − 8) / (20 − 8) and (20 − 8) / (22 − 8)
    only_ipc = {k: v for k, v in runs.items() if k[1] == "ipc"}
    assert BENCH.ratio_table(only_ipc, ["ipc"]) == ["No ratios: they divide another path by tcp, and tcp did not run."]


def test_breakdown_rest_is_the_round_less_its_recorded_phases() -> None:
    """The wall breakdown has a column per recorded phase and a rest that is the round less their sum."""
    phases = dict.fromkeys(PERFKIT.PHASES, 1.0)
    runs = {("small", "tcp"): [_figures(15_010, 10.0, 3.0, 1.0, phases=phases)]}
    (row,) = _rows(BENCH.breakdown_table(runs))
    assert row["round"] == "10.00 (10.00–10.00)" and row["train"] == "1.00 (1.00–1.00)"
    assert row["rest"] == f"{10 - len(phases):.2f} ({10 - len(phases):.2f}–{10 - len(phases):.2f})"


def test_shm_line_counts_each_paths_models_through_shared_memory_where_nodes_count_them() -> None:
    """One count per workload and path (median over repeats); no line at all where no run's nodes had the count
    (a gossip without the same-host path), n/a for a path whose runs lacked it."""
    runs = _runs()
    assert BENCH.shm_line(runs) is None
    runs[("small", "tcp")] = [dataclasses.replace(f, shm_received=0) for f in runs[("small", "tcp")]]
    runs[("small", "ipc")] = [dataclasses.replace(f, shm_received=n) for f, n in zip(runs[("small", "ipc")], (10, 30), strict=True)]
    line = BENCH.shm_line(runs)
    assert line is not None and line.endswith(": small tcp 0, small ipc 20, large tcp n/a, large ipc n/a")


def test_every_figure_column_of_the_quotes_table_says_measured_now_or_quoted_with_source_and_date() -> None:
    """Past workload and params, each column is ours (a path's, measured in this invocation) or a peer's quote
    naming its footnote, source and date; a column naming a peer is never marked measured now."""
    header = list(_rows(BENCH.figures_table(_runs(), ["tcp", "ipc"]))[0])
    assert header[:2] == ["workload", "params"]
    quoted = re.compile(rf"\(quoted: Q1, {re.escape(BENCH.TARGETS.short)}, {re.escape(BENCH.TARGETS.date)}(; Q\d: [^)]+)?\)$")
    for column in header[2:]:
        if any(peer in column for peer in ("decentralizepy", "Murmura", "peers'")):
            assert quoted.search(column), column
        else:
            assert re.search(r", (tcp|ipc) \(measured now\)$", column), column


def test_peer_cells_are_the_quoted_figures_unchanged_so_nothing_is_divided_by_them() -> None:
    """The peers' cells hold the source's figures as written and ours hold our medians with ranges: no column is a
    ratio (no '/' past the units, no '×' in a header)."""
    rows = _rows(BENCH.figures_table(_runs(), ["tcp", "ipc"]))
    assert not any("/" in c.replace("ms/round", "").replace("MiB/node", "") or "×" in c for c in rows[0])
    by_workload = {row["workload"]: row for row in rows}
    for workload, row in by_workload.items():
        for peer, figures in BENCH.PEER_MS.items():
            (cell,) = [v for k, v in row.items() if k.startswith(f"{peer} ms/round")]
            assert cell == f"{figures[workload][0]}–{figures[workload][1]}"
        assert row[next(k for k in row if k.startswith("peers' RSS"))] == "260–395"
    assert by_workload["small"]["gossip ms/round, ipc (measured now)"] == "13.5 (9.0–18.0)"


def test_each_quote_mark_has_a_note_with_its_source_date_and_command_and_no_ratio_is_printed() -> None:
    """Every footnote a header names has a line giving its source, date and command, and the notes say that no
    ratio to a peer is printed because no peer ran in this run."""
    notes = BENCH.quote_notes()
    marks = set(re.findall(r"\b(Q\d)\b", " | ".join(BENCH.figures_table(_runs(), ["tcp", "ipc"])[:1])))
    assert marks == {"Q1", "Q2"}
    for mark in marks:
        (line,) = [n for n in notes if n.startswith(f"[{mark}] ")]
        quote = next(q for q in BENCH.QUOTES if q.mark == mark)
        assert quote.source in line and f"Date: {quote.date}." in line and f"Command: {quote.command}." in line
    assert any(n.startswith("Ratio to a peer: none printed.") for n in notes)


def test_paths_turn_shared_memory_off_for_tcp_and_ipc_and_on_for_shm_where_the_key_exists() -> None:
    """tcp: shared memory off; ipc: the same over ipc:// addresses; shm: on. Without the key, tcp and ipc set
    nothing about it and shm is refused with one line that says how to run without it."""
    assert BENCH.path_overrides("tcp", True) == {"transport.shared_memory": False}
    assert BENCH.path_overrides("ipc", True) == {"transport.shared_memory": False, "transport.address_template": "ipc://"}
    assert BENCH.path_overrides("shm", True) == {"transport.shared_memory": True}
    assert BENCH.path_overrides("tcp", False) == {}
    assert BENCH.path_overrides("ipc", False) == {"transport.address_template": "ipc://"}
    with pytest.raises(ConfigError, match=r"^--paths shm needs the config key transport.shared_memory, .*--paths tcp,ipc$"):
        BENCH.path_overrides("shm", False)


def test_paths_option_takes_known_names_each_once() -> None:
    """--paths keeps the order given; an unknown name, a repeated one or none is refused."""
    assert BENCH.parse_paths("shm, tcp") == ["shm", "tcp"]
    for bad in ("tcp,udp", "tcp,tcp", ","):
        with pytest.raises(ConfigError, match=r"^--paths takes some of tcp,ipc,shm"):
            BENCH.parse_paths(bad)


def test_cpu_per_round_reads_the_cpu_between_samples_inside_the_steady_rounds() -> None:
    """Samples outside the rounds are left out; the CPU between the first and last inside is divided by the rounds
    the records show between them, fractions of a round included; fewer than two samples inside give None."""
    ends = [10.0, 11.0, 12.0, 13.0, 14.0]  # four rounds of 1 s
    samples = [(9.0, 0.0), (10.5, 100.0), (12.0, 103.0), (13.5, 106.0), (15.0, 500.0)]
    assert PERFKIT.cpu_per_round(samples, ends) == pytest.approx(2.0)  # 6 s of CPU over 3 rounds (10.5 … 13.5)
    assert PERFKIT.cpu_per_round([(9.0, 0.0), (12.0, 1.0), (15.0, 2.0)], ends) is None


def test_pss_near_is_the_last_sample_before_the_steady_rounds_end() -> None:
    """Samples taken after the last steady round (evaluation, exit) are not the run's memory."""
    assert PERFKIT.pss_near([(1.0, 10), (2.0, 20), (3.0, 5)], 2.5) == 20
    assert PERFKIT.pss_near([(3.0, 5)], 2.5) is None


def test_node_sampler_follows_a_process_named_like_a_node_of_the_run(tmp_path: Path) -> None:
    """A process whose command line names the run and `node --id 3` is sampled as node 3: its CPU from /proc rises
    as it burns CPU, its peak RSS and a PSS are read; a process without the run's name is not sampled."""
    burn = "import sys, time\nt = time.process_time()\nwhile time.process_time() - t < 0.25: pass\ntime.sleep(0.2)"
    marker = str(tmp_path / "run")
    with PERFKIT.NodeSampler(marker, nodes=1, period_s=0.02, pss_every=2) as sampler:
        other = subprocess.Popen([sys.executable, "-c", burn, "node", "--id", "4", str(tmp_path / "other")])
        node = subprocess.Popen([sys.executable, "-c", burn, "node", "--id", "3", "--run-dir", marker])
        assert node.wait(timeout=30) == 0 and other.wait(timeout=30) == 0
        time.sleep(0.05)
    (trace,) = sampler.traces.values()
    assert trace.node == 3 and trace.hwm > 0 and trace.pss
    cpu = [c for _t, c in trace.cpu]
    assert cpu == sorted(cpu) and cpu[-1] - cpu[0] > 0.1


def test_proc_cpu_is_the_process_cpu_clock_to_a_tick() -> None:
    """utime + stime of this process agrees with its own CPU clock, to within a couple of kernel ticks."""
    t = time.process_time()
    while time.process_time() - t < 0.2:
        pass
    got = PERFKIT.proc_cpu_s(os.getpid())
    assert got is not None and math.isclose(got, time.process_time(), abs_tol=3 / PERFKIT.CLOCK_TICKS)


@pytest.mark.slow
def test_quick_run_prints_every_table_for_both_sizes_and_each_path() -> None:
    """`--quick` through the real script (4 nodes, to spare the shared machine): one `gossip launch` per workload and
    path; every table has its rows, the CPU from /proc and the memory were read for each (no n/a), and the ratios
    are against tcp. The same-host path runs too where this gossip has it."""
    paths = ["tcp", "ipc", "shm"] if BENCH.has_shared_memory() else ["tcp", "ipc"]
    r = subprocess.run(
        [sys.executable, "bench/round_time.py", "--quick", "--nodes", "4", "--paths", ",".join(paths)],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=300,
        env=cli_env(),
    )
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    main = [line for line in r.stdout.splitlines() if re.match(r"\| (small|large) \| [\d,]+ \| (tcp|ipc|shm) \|", line)]
    assert [tuple(c.strip() for c in line.split("|")[1:4:2]) for line in main] == [(w, p) for w in ("small", "large") for p in paths]
    assert not any("n/a" in line for line in main), main
    assert re.search(r"^\| large \| ipc/tcp \| \d", r.stdout, re.M)
    assert re.search(r"^\| large \| 3\.86 \| \d+\.\d{3} ", r.stdout, re.M)  # the copy floor of the 1M model
    assert "peak RSS" in r.stdout and "PSS" in r.stdout and "note:" not in r.stderr
    if "shm" in paths:  # each path is what it says: only shm moves models through shared memory
        # the 15k model is below the path's threshold (gossip.net.shm.MIN_BYTES): it stays on the sockets
        assert re.search(
            r"through shared memory .*: small tcp 0, small ipc 0, small shm 0, large tcp 0, large ipc 0, large shm [1-9]", r.stdout
        )


@pytest.mark.slow
def test_an_unknown_path_is_refused_in_one_line_before_anything_runs() -> None:
    """A user mistake in --paths: exit 2, one line on stderr, no traceback, nothing printed on stdout."""
    r = subprocess.run(
        [sys.executable, "bench/round_time.py", "--paths", "tcp,udp"], cwd=REPO, capture_output=True, text=True, timeout=120, env=cli_env()
    )
    assert r.returncode == 2 and r.stdout == ""
    assert r.stderr.splitlines() == [r.stderr.strip()] and r.stderr.startswith("bench/round_time.py: error: --paths takes")
