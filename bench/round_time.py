"""Time per round and memory per node on the workload decentralizepy's and Murmura's quoted figures are for.

    .venv/bin/python bench/round_time.py [--repeat 3] [--small-rounds 300] [--large-rounds 100]

Workload (the one the peer figures were measured with): 8 node processes on a ring, plain averaging
with weights 1/3, one SGD step of batch 32 per round, synthetic data; a 64-200-10 MLP (15k
parameters) and a 1000-1000-10 MLP (1M). The two workloads are run interleaved ``--repeat`` times
and every figure is the median over repeats. Time per round is the steady state (warm-up rounds and
the final, evaluating round skipped), from the nodes' own JSONL records; the breakdown is the mean of
each phase per round; RSS is the peak VmRSS of each node process (median over nodes), next to a
bare ``python -c "import torch"``.

Columns marked "measured now" come from this invocation. The peers do not run here (decentralizepy and
Murmura are not installed), so their figures are quotes from a document: each column says so with its
source and date, the notes under the table give the source in full, and no figure of ours is divided by
one of theirs (a figure measured on another day or machine says nothing about a ratio).
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from perfkit import PHASES, RunFigures, bare_torch_rss, median_figures, ring_workload, run_measured


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
WORKLOADS = {"small": (64, (200,)), "large": (1000, (1000,))}
NOW = "measured now"


def _quoted(q: Quote, caveat: Quote | None = None) -> str:
    also = f"; {caveat.mark}: {caveat.short}, {caveat.date}" if caveat else ""
    return f"quoted: {q.mark}, {q.short}, {q.date}{also}"


def _span(low_high: tuple[int, int]) -> str:
    return f"{low_high[0]}–{low_high[1]}"


def figures_table(med: Mapping[str, RunFigures], nodes: int, cores: int, bare_mib: float) -> list[str]:
    """Ours (measured now) beside the peers' (quoted, with source and date); no column divides one by the other."""
    peers = list(PEER_MS)
    header = (
        ["workload", "params", f"gossip ms/round ({NOW})", f"CPU-bound ms/round ({NOW})"]
        + [f"{p} ms/round ({_quoted(TARGETS, PEER_CAVEATS.get(p))})" for p in peers]
        + [f"gossip RSS MiB/node ({NOW})", f"above bare torch ({NOW})", f"peers' RSS MiB/node ({_quoted(TARGETS)})"]
    )
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for n, f in med.items():
        cells = (
            [n, f"{f.params:,}", f"{f.round_ms:.1f}", f"{nodes * f.cpu_ms / cores:.1f}"]
            + [_span(PEER_MS[p][n]) for p in peers]
            + [f"{f.rss_mib:.0f}", f"{f.rss_mib - bare_mib:+.0f}", _span(PEER_RSS_MIB)]
        )
        lines.append("| " + " | ".join(cells) + " |")
    return lines


def quote_notes() -> list[str]:
    """Each quote's source, date and command, and why no ratio to a peer is printed."""
    lines = [
        f"{NOW}: this invocation, this machine. Quoted: from a document, not measured in this run; printed beside ours, never divided by."
    ]
    lines += [f"[{q.mark}] {q.source}. Date: {q.date}. Command: {q.command}." for q in QUOTES]
    lines.append("Ratio to a peer: none printed. A ratio divides figures measured in the same run, and no peer ran in this one.")
    return lines


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--repeat", type=int, default=3)
    p.add_argument("--nodes", type=int, default=8)
    p.add_argument("--small-rounds", type=int, default=300)
    p.add_argument("--large-rounds", type=int, default=100)
    p.add_argument("--only", choices=sorted(WORKLOADS), action="append")
    args = p.parse_args()
    names = args.only or list(WORKLOADS)
    rounds = {"small": args.small_rounds, "large": args.large_rounds}
    load_before = " ".join(open("/proc/loadavg").read().split()[:3])
    runs: dict[str, list[RunFigures]] = {n: [] for n in names}
    bare = []
    for rep in range(args.repeat):  # interleaved: a burst of load on the shared machine hits every variant
        bare.append(bare_torch_rss())
        for name in names:
            features, hidden = WORKLOADS[name]
            fig = run_measured(name, ring_workload(args.nodes, rounds[name], features, hidden))
            runs[name].append(fig)
            print(
                f"  repeat {rep + 1}/{args.repeat} {name}: {fig.round_ms:.2f} ms/round, RSS {fig.rss_mib:.0f} MiB",
                file=sys.stderr,
                flush=True,
            )
    bare_mib = sorted(bare)[len(bare) // 2] / 2**20
    med = {n: median_figures(r) for n, r in runs.items()}

    print(
        f"\n{args.nodes} nodes, ring, weights 1/3, 1 SGD step of batch 32 per round, synthetic data; median of {args.repeat} interleaved runs\n"
    )
    cores = os.cpu_count() or 1
    print("\n".join(figures_table(med, args.nodes, cores, bare_mib)))
    print("\n" + "\n".join(quote_notes()))
    print(f"CPU-bound ms/round = nodes × CPU per node-round / {cores} cores: the round time if this machine ran nothing else.")
    print(f"Load average before / after: {load_before} / {' '.join(open('/proc/loadavg').read().split()[:3])} (the machine is shared).")
    print(f'bare `python -c "import torch"`: {bare_mib:.0f} MiB\n')
    print("Breakdown of a round (ms, mean per steady round, median over nodes and repeats; measured now):\n")
    print(
        "| workload | round | "
        + " | ".join(p.removesuffix("_s") for p in PHASES)
        + " | rest | CPU/round | train CPU | non-training CPU share |"
    )
    print("|---|---|" + "---|" * (len(PHASES) + 4))
    for n, f in med.items():
        rest = f.round_ms - sum(f.phases_ms.values())
        print(
            f"| {n} | {f.round_ms:.2f} | "
            + " | ".join(f"{f.phases_ms[p]:.2f}" for p in PHASES)
            + f" | {rest:.2f} | {f.cpu_ms:.2f} | {f.train_cpu_ms:.2f} | {f.overhead_cpu:.1%} |"
        )


if __name__ == "__main__":
    main()
