"""Time, CPU and memory per round of the workload decentralizepy's and Murmura's quoted figures are for, over
loopback TCP, ipc and the same-host (shared-memory) path.

    .venv/bin/python bench/round_time.py [--repeat 3] [--paths tcp,ipc,shm] [--only small] [--small-rounds 1000] [--large-rounds 150]
    .venv/bin/python bench/round_time.py --quick --paths tcp,ipc      # smoke test: few rounds, one repeat

Workload (the one the peer figures were measured with): 8 node processes on a ring (``gossip launch``), plain
averaging with weights 1/3, one SGD step of batch 32 per round, synthetic data; a 64-200-10 MLP (15k parameters,
"small") and a 1000-1000-10 MLP (1M, "large").

Paths (``--paths``, default all three):
- tcp: loopback TCP with shared memory off (``transport.shared_memory = false``);
- ipc: Unix-domain sockets (``gossip launch --ipc``, ``transport.address_template = "ipc://"``), shared memory off;
- shm: loopback TCP addresses with shared memory on (``transport.shared_memory = true``, the default), so models
  between nodes of one host take the same-host path.
A gossip without the key ``transport.shared_memory`` has no same-host path: tcp and ipc run as they are, and shm is
refused before anything runs (one line, exit 2).

Runs are interleaved — for each repeat, for each model size, for each path, one launch — so a burst of load on a
shared machine hits every variant alike. Every figure is the median over repeats with its range (min–max).
Steady state: the first fifth of the rounds (at least 5) and the last round (it evaluates) are left out.

Main table, per model size and path (all measured in this invocation):
- ms/round: wall time per steady round, from the nodes' own records (median over nodes);
- CPU-bound ms/round: nodes × CPU per node-round / cores, the round time if the machine ran nothing else;
- CPU/node-round: utime + stime of each node process (/proc/PID/stat, all its threads), sampled every 50 ms;
  the CPU between the first and the last sample inside the steady rounds, over the rounds between them (median over
  nodes). Start-up, warm-up, the evaluating round and exit fall outside the window; the kernel counts in ticks of
  10 ms, so the default rounds keep each window at several hundred ms of CPU;
- training: the CPU of the local SGD step (the records' ``train_cpu_s``: the training thread's clock during it);
- rest: CPU/node-round − training: encode, send, receive and check, mixing, records, the event loop and ZeroMQ's
  I/O thread — what moving and merging models costs;
- rest ÷ copies: rest over the round's copy floor (below), both measured in this run;
- node clock: the node's own process CPU clock per steady round (all threads): a cross-check of the /proc figure;
- peak RSS: VmHWM of each node (median over nodes); PSS: smaps_rollup's Pss (a page shared by k processes counts
  1/k: forked nodes share torch's pages) sampled last before the end of the steady rounds, median over nodes;
- models through shared memory, under the table: the count the nodes' summaries give (none on tcp and ipc, nor
  for a model under ``gossip.net.shm.MIN_BYTES``, which stays on the sockets on every path).

Copy floor: the median time of ``numpy.copyto`` of one model's float32 bytes (200 copies), measured after each
size's runs in every repeat; a ring node sends two models and receives two a round, at least one copy each: the
round's copies are 4 × one copy. Ratios: shm/tcp and ipc/tcp per repeat (each repeat's paths ran back to back),
median and range. Wall breakdown: each phase the nodes record (perfkit.PHASES), mean per steady round; rest is the
round less the phases. Memory is printed beside a bare ``python -c "import torch"``.

Columns marked "quoted" are figures from a document: the peers do not run here (decentralizepy and Murmura are not
installed). Each says so with its source and date, the notes under the table give the source in full, and no figure
of ours is divided by one of theirs (a figure measured on another day or machine says nothing about a ratio).
"""

from __future__ import annotations

import argparse
import math
import os
import statistics
import sys
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from perfkit import PHASES, MiB, RunFigures, bare_torch_memory, copy_floor_ms, ring_workload, run_measured

from gossip.config import load_config
from gossip.errors import ConfigError
from gossip.net.shm import MIN_BYTES as SHM_MIN_BYTES

WORKLOADS = {"small": (64, (200,)), "large": (1000, (1000,))}
PATHS = ("tcp", "ipc", "shm")
SHM_KEY = "transport.shared_memory"
COPIES_PER_ROUND = 4  # a ring node: two models out, two in, one copy each at least
NOW = "measured now"
Runs = Mapping[tuple[str, str], Sequence[RunFigures]]  # (workload, path) -> one run per repeat


@dataclass(frozen=True)
class Quote:
    """Where a figure we did not measure comes from: printed beside ours, never divided by."""

    mark: str  # the footnote mark the table's columns carry
    short: str  # the source in a few words, for a column header
    date: str
    source: str  # the source in full
    command: str  # what produced the figures, as far as the source says


TARGETS = Quote(
    mark="Q1",
    short="project issue",
    date="≤ 2026-11-25",
    source=(
        "the project's issue that set the round-time and memory targets: measured by its author on a 2-core machine,"
        " recorded as this one, on or before 2026-11-25 (when they were written into bench/round_time.py)"
    ),
    command="not given by the source (the workload above, by its account)",
)
RECHECK = Quote(
    mark="Q2",
    short="report on this bench",
    date="read 2026-12-07",
    source=(
        "a report filed against bench/round_time.py, read 2026-12-07: decentralizepy, measured when it was written,"
        " ran 20–25 % faster than Q1's figures; it gives no figures of its own, so none are printed"
    ),
    command="not given by the source",
)
QUOTES = (TARGETS, RECHECK)
# Q1's figures: ms per round by workload, and MiB per node for both peers and both workloads.
PEER_MS = {
    "decentralizepy": {"small": (11, 17), "large": (103, 108)},
    "Murmura": {"small": (20, 24), "large": (131, 135)},
}
PEER_RSS_MIB = (260, 395)
# A later quote that says a peer's Q1 figures are out of date, named in that peer's column.
PEER_CAVEATS = {"decentralizepy": RECHECK}


def quoted_header(peer: str | None) -> str:
    """A quoted column's mark: Q1 with its source and date, and a later caveat on that peer's figures if any."""
    caveat = PEER_CAVEATS.get(peer) if peer else None
    also = f"; {caveat.mark}: {caveat.short}, {caveat.date}" if caveat else ""
    return f"quoted: {TARGETS.mark}, {TARGETS.short}, {TARGETS.date}{also}"


def quote_notes() -> list[str]:
    """Each quote's source, date and command, and why no ratio to a peer is printed."""
    lines = [
        f"{NOW}: this invocation, this machine. Quoted: from a document, not measured in this run; printed beside ours, never divided by."
    ]
    lines += [f"[{q.mark}] {q.source}. Date: {q.date}. Command: {q.command}." for q in QUOTES]
    lines.append("Ratio to a peer: none printed. A ratio divides figures measured in the same run, and no peer ran in this one.")
    return lines


@dataclass(frozen=True)
class Spread:
    """A figure over repeats: the median and the range (min–max) it was drawn from."""

    median: float
    low: float
    high: float

    @staticmethod
    def of(values: Iterable[float]) -> Spread | None:
        """The spread of the values that were measured (NaN, a figure a run could not give, is left out); None if none."""
        got = [v for v in values if not math.isnan(v)]
        return Spread(statistics.median(got), min(got), max(got)) if got else None


def cell(spread: Spread | None, digits: int = 2) -> str:
    """A table cell: ``median (min–max)``, or ``n/a`` where no run gave the figure."""
    if spread is None:
        return "n/a"
    return f"{spread.median:.{digits}f} ({spread.low:.{digits}f}–{spread.high:.{digits}f})"


def ratios(numerators: Sequence[float], denominators: Sequence[float]) -> Spread | None:
    """The spread of paired ratios: repeat i's numerator over repeat i's denominator, each pair run back to back, so
    that load that moved between repeats cancels within a pair."""
    return Spread.of(n / d if d else float("nan") for n, d in zip(numerators, denominators, strict=True))


def has_shared_memory() -> bool:
    """Whether this gossip has the same-host path's key (``transport.shared_memory``)."""
    try:
        load_config(env={}, overrides={SHM_KEY: True})
    except ConfigError:
        return False
    return True


def path_overrides(path: str, shm_key: bool) -> dict[str, Any]:
    """The config a path runs with; ConfigError (its message one line) for shm where the key does not exist."""
    if path == "shm":
        if not shm_key:
            raise ConfigError(f"--paths shm needs the config key {SHM_KEY}, which this gossip does not have; run --paths tcp,ipc")
        return {SHM_KEY: True}
    off = {SHM_KEY: False} if shm_key else {}
    return {**off, "transport.address_template": "ipc://"} if path == "ipc" else off


def parse_paths(text: str) -> list[str]:
    """``--paths``: names from PATHS, comma-separated, each once; ConfigError otherwise."""
    names = [n.strip() for n in text.split(",") if n.strip()]
    unknown = [n for n in names if n not in PATHS]
    if unknown or not names or len(set(names)) != len(names):
        raise ConfigError(f"--paths takes some of {','.join(PATHS)}, each once, comma-separated; got {text!r}")
    return names


def _values(runs: Runs, key: tuple[str, str], of: Callable[[RunFigures], float]) -> list[float]:
    return [of(f) for f in runs[key]]


def _line(cells: Sequence[str]) -> str:
    return "| " + " | ".join(cells) + " |"


def main_table(runs: Runs, floors: Mapping[str, Sequence[float]], nodes: int, cores: int) -> list[str]:
    """Per workload and path: time, CPU with its breakdown, the rest against the copy floor, memory (median (min–max))."""
    header = [
        "workload",
        "params",
        "path",
        "ms/round",
        "CPU-bound ms/round",
        "CPU ms/node-round",
        "training",
        "rest",
        "rest ÷ copies",
        "node clock",
        "peak RSS MiB",
        "PSS MiB",
    ]
    lines = [_line(header), "|" + "---|" * len(header)]
    for (workload, path), figs in runs.items():
        rest = [f.proc_cpu_ms - f.train_cpu_ms for f in figs]
        floor = [COPIES_PER_ROUND * ms for ms in floors[workload]]
        lines.append(
            _line(
                [
                    workload,
                    f"{figs[0].params:,}",
                    path,
                    cell(Spread.of(f.round_ms for f in figs)),
                    cell(Spread.of(nodes * f.proc_cpu_ms / cores for f in figs)),
                    cell(Spread.of(f.proc_cpu_ms for f in figs)),
                    cell(Spread.of(f.train_cpu_ms for f in figs)),
                    cell(Spread.of(rest)),
                    cell(Spread.of(r / c for r, c in zip(rest, floor, strict=True)), 1),
                    cell(Spread.of(f.cpu_ms for f in figs)),
                    cell(Spread.of(f.rss_mib for f in figs), 0),
                    cell(Spread.of(f.pss_mib for f in figs), 0),
                ]
            )
        )
    return lines


def ratio_table(runs: Runs, paths: Sequence[str]) -> list[str]:
    """shm/tcp and ipc/tcp of time, CPU and the rest, each repeat's pair divided, median (min–max); both measured now."""
    pairs = [p for p in ("shm", "ipc") if p in paths and "tcp" in paths]
    if not pairs:
        return ["No ratios: they divide another path by tcp, and tcp did not run."]
    metrics: dict[str, Callable[[RunFigures], float]] = {
        "ms/round": lambda f: f.round_ms,
        "CPU/node-round": lambda f: f.proc_cpu_ms,
        "rest CPU": lambda f: f.proc_cpu_ms - f.train_cpu_ms,
    }
    lines = [_line(["workload", "ratio", *metrics]), "|" + "---|" * (2 + len(metrics))]
    for workload in dict.fromkeys(w for w, _ in runs):
        for p in pairs:
            cells = [cell(ratios(_values(runs, (workload, p), m), _values(runs, (workload, "tcp"), m))) for m in metrics.values()]
            lines.append(_line([workload, f"{p}/tcp", *cells]))
    return lines


def breakdown_table(runs: Runs) -> list[str]:
    """Wall time of a round by the phases the nodes record, ms per steady round, median (min–max) over repeats."""
    names = [p.removesuffix("_s") for p in PHASES]
    lines = [_line(["workload", "path", "round", *names, "rest"]), "|" + "---|" * (len(PHASES) + 4)]
    for (workload, path), figs in runs.items():
        phases = [cell(Spread.of(f.phases_ms[p] for f in figs)) for p in PHASES]
        rest = cell(Spread.of(f.round_ms - sum(f.phases_ms.values()) for f in figs))
        lines.append(_line([workload, path, cell(Spread.of(f.round_ms for f in figs)), *phases, rest]))
    return lines


def copy_table(runs: Runs, floors: Mapping[str, Sequence[float]]) -> list[str]:
    """The copy floor of each model, one copy and the round's four, median (min–max) over repeats."""
    lines = [_line(["workload", "model MiB", "one copy ms", f"the round's {COPIES_PER_ROUND} copies ms"]), "|---|---|---|---|"]
    for workload, ms in floors.items():
        params = next(figs[0].params for (w, _), figs in runs.items() if w == workload)
        copies = [COPIES_PER_ROUND * m for m in ms]
        lines.append(_line([workload, f"{params * 4 / MiB:.2f}", cell(Spread.of(ms), 3), cell(Spread.of(copies), 3)]))
    return lines


def figures_table(runs: Runs, paths: Sequence[str]) -> list[str]:
    """Ours (measured now) beside the peers' (quoted, with source and date); no column divides one by the other."""
    header = (
        ["workload", "params"]
        + [f"gossip ms/round, {p} ({NOW})" for p in paths]
        + [f"{peer} ms/round ({quoted_header(peer)})" for peer in PEER_MS]
        + [f"gossip peak RSS MiB/node, {p} ({NOW})" for p in paths]
        + [f"peers' RSS MiB/node ({quoted_header(None)})"]
    )
    lines = [_line(header), "|" + "---|" * len(header)]
    for workload in dict.fromkeys(w for w, _ in runs):
        figs = {p: runs[(workload, p)] for p in paths}
        cells = (
            [workload, f"{figs[paths[0]][0].params:,}"]
            + [cell(Spread.of(f.round_ms for f in figs[p]), 1) for p in paths]
            + [_span(PEER_MS[peer][workload]) for peer in PEER_MS]
            + [cell(Spread.of(f.rss_mib for f in figs[p]), 0) for p in paths]
            + [_span(PEER_RSS_MIB)]
        )
        lines.append(_line(cells))
    return lines


def shm_line(runs: Runs) -> str | None:
    """How many models each workload and path moved through same-host shared memory (the nodes' summaries, all
    nodes, whole run, median over repeats): the check that shm took that path and tcp and ipc did not."""
    counts = {key: [f.shm_received for f in figs if f.shm_received is not None] for key, figs in runs.items()}
    if not any(counts.values()):
        return None
    cells = [f"{w} {p} {statistics.median(c):.0f}" if c else f"{w} {p} n/a" for (w, p), c in counts.items()]
    return "Models received through shared memory (all nodes, whole run, from their summaries): " + ", ".join(cells)


def _span(low_high: tuple[int, int]) -> str:
    return f"{low_high[0]}–{low_high[1]}"


def measure(
    args: argparse.Namespace, plan: Mapping[str, dict[str, Any]]
) -> tuple[dict[tuple[str, str], list[RunFigures]], dict[str, list[float]], list[tuple[int, int]]]:
    """The interleaved runs: for each repeat, for each workload, for each path one launch, then the copy floor."""
    rounds = {"small": args.small_rounds, "large": args.large_rounds}
    runs: dict[tuple[str, str], list[RunFigures]] = {(w, p): [] for w in args.only for p in plan}
    floors: dict[str, list[float]] = {w: [] for w in args.only}
    bare = []
    for rep in range(args.repeat):  # interleaved: a burst of load on the shared machine hits every variant
        bare.append(bare_torch_memory())
        for workload in args.only:
            features, hidden = WORKLOADS[workload]
            for path, extra in plan.items():
                fig = run_measured(f"{workload}, {path}", ring_workload(args.nodes, rounds[workload], features, hidden, **extra))
                runs[(workload, path)].append(fig)
                if path == "shm" and not fig.shm_received and fig.params * 4 >= SHM_MIN_BYTES:
                    print(f"  note: {workload}, shm: no model went through shared memory", file=sys.stderr)
                print(
                    f"  repeat {rep + 1}/{args.repeat} {workload} {path}: {fig.round_ms:.2f} ms/round, CPU {fig.proc_cpu_ms:.2f} "
                    f"ms/node-round, peak RSS {fig.rss_mib:.0f} MiB, PSS {fig.pss_mib:.0f} MiB",
                    file=sys.stderr,
                    flush=True,
                )
            floors[workload].append(copy_floor_ms(runs[(workload, next(iter(plan)))][-1].params))
    return runs, floors, bare


def _arguments() -> argparse.Namespace:
    p = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    p.add_argument("--repeat", type=int, default=3)
    p.add_argument("--nodes", type=int, default=8)
    p.add_argument("--small-rounds", type=int, default=1000)
    p.add_argument("--large-rounds", type=int, default=150)
    p.add_argument("--only", choices=sorted(WORKLOADS), action="append")
    p.add_argument("--paths", default=",".join(PATHS), help=f"some of {','.join(PATHS)}, comma-separated (default all)")
    p.add_argument("--quick", action="store_true", help="a smoke test: 1 repeat, 150 small and 20 large rounds")
    args = p.parse_args()
    args.only = args.only or list(WORKLOADS)
    if args.quick:
        args.repeat, args.small_rounds, args.large_rounds = 1, 150, 20
    return args


def main() -> None:
    args = _arguments()
    try:
        paths = parse_paths(args.paths)
        shm_key = has_shared_memory()
        plan = {path: path_overrides(path, shm_key) for path in paths}
    except ConfigError as e:
        print(f"bench/round_time.py: error: {e}", file=sys.stderr)
        raise SystemExit(2) from None
    load_before = " ".join(open("/proc/loadavg").read().split()[:3])
    runs, floors, bare = measure(args, plan)
    cores = os.cpu_count() or 1
    print(
        f"\n{args.nodes} nodes, ring, weights 1/3, 1 SGD step of batch 32 per round, synthetic data; paths {', '.join(paths)}; "
        f"median (min–max) of {args.repeat} interleaved repeats; everything below the quotes' table is {NOW}\n"
    )
    print("\n".join(figures_table(runs, paths)))
    print("\n" + "\n".join(quote_notes()))
    if not shm_key:
        print(f"This gossip has no {SHM_KEY}: tcp and ipc ran without a same-host path to turn off.")
    print(f"Load average before / after: {load_before} / {' '.join(open('/proc/loadavg').read().split()[:3])} (the machine is shared).")
    print(f"\nTime, CPU (ms per steady round) and memory per node; CPU-bound = {args.nodes} × CPU/node-round / {cores} cores:\n")
    print("\n".join(main_table(runs, floors, args.nodes, cores)))
    if (line := shm_line(runs)) is not None:
        print(f"\n{line}")
    hwm, pss = Spread.of(b[0] / MiB for b in bare), Spread.of(b[1] / MiB for b in bare)
    print(f'\nbare `python -c "import torch"`: peak RSS {cell(hwm, 0)} MiB, PSS {cell(pss, 0)} MiB')
    print("\nCopy floor (numpy.copyto of the model's float32 bytes, median of 200):\n")
    print("\n".join(copy_table(runs, floors)))
    print("\nPath against path (each repeat's pair divided; both measured in this run):\n")
    print("\n".join(ratio_table(runs, paths)))
    print("\nWall time of a round by phase (ms, mean per steady round, median over nodes):\n")
    print("\n".join(breakdown_table(runs)))


if __name__ == "__main__":
    main()
