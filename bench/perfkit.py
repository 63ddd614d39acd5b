"""Shared by the performance benchmarks: launch a run while sampling its nodes' memory and CPU from /proc, then read
the steady-state cost of a round from the nodes' own JSONL records and from those samples.

Why memory and CPU are sampled from outside: the figure to compare with other systems is what the operating
system charges each node process (VmHWM, PSS and utime + stime in /proc), including the interpreter, torch and
ZeroMQ's threads, not what the node thinks it used. The node processes are found by their command line, which
names the run directory and the node's ``--id``.
"""

from __future__ import annotations

import bisect
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from gossip.config import load_config
from gossip.results.rundir import records_by_node
from gossip.run.launch import launch

MiB = 1024 * 1024
# The parts of a round, in order, as the node records them (seconds).
PHASES = ("train_s", "encode_s", "send_s", "wait_s", "aggregate_s")


def vm_rss(pid: int | str) -> int | None:
    """Resident set size of a process in bytes (VmRSS), or None when it is gone."""
    return _proc_kib_field(f"/proc/{pid}/status", "VmRSS:")


def pss(pid: int | str) -> int | None:
    """Proportional set size of a process, bytes (a page shared by k processes counts 1/k); None if it is gone."""
    return _proc_kib_field(f"/proc/{pid}/smaps_rollup", "Pss:")


def _proc_kib_field(path: str, key: str) -> int | None:
    try:
        with open(path) as f:
            for line in f:
                if line.startswith(key):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError):
        return None
    return None


def proc_cpu_s(pid: int | str) -> float | None:
    """CPU time a process has used, all its threads, user and system (utime + stime of /proc/PID/stat), seconds.

    The kernel reports it in clock ticks (1/100 s here): a difference of two readings is exact to a tick.
    """
    try:
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()  # the command name, in parentheses, may hold spaces
    except (OSError, IndexError):
        return None
    return (int(fields[11]) + int(fields[12])) / CLOCK_TICKS  # fields 14 and 15 of stat(5), counted from the pid


CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


def bare_torch_memory() -> tuple[int, int]:
    """Peak RSS (VmHWM) and PSS of a bare ``python -c "import torch"`` process, bytes: the floor every node pays."""
    code = (
        "import torch\n"
        "hwm = [l for l in open('/proc/self/status') if l.startswith('VmHWM:')][0].split()[1]\n"
        "pss = [l for l in open('/proc/self/smaps_rollup') if l.startswith('Pss:')][0].split()[1]\n"
        "print(int(hwm) * 1024, int(pss) * 1024)"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, env={**os.environ, "OMP_NUM_THREADS": "1"}
    )
    hwm, pss_bytes = out.stdout.split()
    return int(hwm), int(pss_bytes)


def bare_torch_rss() -> int:
    """VmRSS of a bare ``python -c "import torch"`` process: the floor every node pays."""
    code = "import torch\nfor l in open('/proc/self/status'):\n    l.startswith('VmRSS:') and print(int(l.split()[1]) * 1024)"
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, env={**os.environ, "OMP_NUM_THREADS": "1"}
    )
    return int(out.stdout.strip())


class RssSampler:
    """Peak VmRSS (or another ``measure`` of a pid, such as :func:`pss`) of every node process whose command
    line contains ``marker``, sampled in a thread."""

    def __init__(self, marker: str, period_s: float = 0.2, measure: Callable[[str], int | None] = vm_rss) -> None:
        self.marker = marker.encode()
        self.period_s = period_s
        self.measure = measure
        self.peak: dict[int, int] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> RssSampler:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()

    def _run(self) -> None:
        me = os.getpid()
        while not self._stop.wait(self.period_s):
            for entry in os.listdir("/proc"):
                if not entry.isdigit() or int(entry) == me:
                    continue
                try:
                    with open(f"/proc/{entry}/cmdline", "rb") as f:
                        cmd = f.read()
                except OSError:
                    continue
                if self.marker in cmd and b" node" in cmd.replace(b"\0", b" "):
                    value = self.measure(entry)
                    if value is not None:
                        self.peak[int(entry)] = max(value, self.peak.get(int(entry), 0))


@dataclass
class NodeTrace:
    """What :class:`NodeSampler` saw of one node process: its CPU and PSS over time, its peak RSS."""

    node: int  # the node's --id
    cpu: list[tuple[float, float]] = field(default_factory=list)  # (time.time(), utime + stime in seconds)
    pss: list[tuple[float, int]] = field(default_factory=list)  # (time.time(), PSS in bytes)
    hwm: int = 0  # the highest VmHWM read: the kernel's own peak of the resident set, bytes


class NodeSampler:
    """Samples, in a thread, every node process whose command line contains ``marker``: CPU (utime + stime) and
    VmHWM every ``period_s``, PSS every ``pss_every`` periods (reading smaps_rollup walks the page tables: it costs).

    Each sample carries ``time.time()``, the clock the nodes stamp their round records with, so that the CPU a
    node used between two of its rounds can be read off (:func:`cpu_per_round`). Processes are looked for until
    ``nodes`` of them are found; only those are sampled after that.
    """

    def __init__(self, marker: str, nodes: int, period_s: float = 0.05, pss_every: int = 10) -> None:
        self.marker = marker.encode()
        self.nodes = nodes
        self.period_s = period_s
        self.pss_every = pss_every
        self.traces: dict[int, NodeTrace] = {}  # by pid
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> NodeSampler:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()

    def _run(self) -> None:
        tick = 0
        while not self._stop.wait(self.period_s):
            if len(self.traces) < self.nodes:
                self._discover()
            for pid, trace in self.traces.items():
                now, cpu = time.time(), proc_cpu_s(pid)
                if cpu is None:
                    continue  # gone (or a zombie): its last samples stand
                trace.cpu.append((now, cpu))
                trace.hwm = max(trace.hwm, _proc_kib_field(f"/proc/{pid}/status", "VmHWM:") or 0)
                if tick % self.pss_every == 0 and (value := pss(pid)) is not None:
                    trace.pss.append((time.time(), value))
            tick += 1

    def _discover(self) -> None:
        me = os.getpid()
        for entry in os.listdir("/proc"):
            if not entry.isdigit() or int(entry) == me or int(entry) in self.traces:
                continue
            try:
                with open(f"/proc/{entry}/cmdline", "rb") as f:
                    words = f.read().replace(b"\0", b" ").split()
            except OSError:
                continue
            if b"node" in words and b"--id" in words[:-1] and any(self.marker in w for w in words):
                self.traces[int(entry)] = NodeTrace(node=int(words[words.index(b"--id") + 1]))


def cpu_per_round(cpu: Sequence[tuple[float, float]], round_ends: Sequence[float]) -> float | None:
    """CPU per round over the rounds that ended at ``round_ends`` (ascending ``time.time()``), from CPU samples.

    The first and the last sample taken inside those rounds bound the window; its CPU is divided by the rounds
    the window spans, counted from the records (a fraction of a round by linear interpolation of its end
    times). None when fewer than two samples fall inside.
    """
    inside = [(t, c) for t, c in cpu if round_ends[0] <= t <= round_ends[-1]]
    if len(inside) < 2 or inside[-1][0] <= inside[0][0]:
        return None
    (t0, c0), (t1, c1) = inside[0], inside[-1]
    return (c1 - c0) / (_rounds_at(round_ends, t1) - _rounds_at(round_ends, t0))


def _rounds_at(ends: Sequence[float], t: float) -> float:
    """How many rounds since ``ends[0]`` had ended by ``t`` (fractional between two ends)."""
    i = min(max(bisect.bisect_right(ends, t), 1), len(ends) - 1)
    span = ends[i] - ends[i - 1]
    return i - 1 + ((t - ends[i - 1]) / span if span > 0 else 1.0)


def pss_near(samples: Sequence[tuple[float, int]], end: float) -> int | None:
    """The last PSS sample taken at or before ``end`` (a node's last steady round): the end of the run, before its exit."""
    before = [v for t, v in samples if t <= end]
    return before[-1] if before else None


def copy_floor_ms(numel: int, repeat: int = 200) -> float:
    """Median time of one ``numpy.copyto`` of ``numel`` float32 values into a second buffer, in ms: the least a
    model's bytes cost each time they are moved."""
    src = np.random.default_rng(0).standard_normal(numel).astype(np.float32)
    dst = np.empty_like(src)
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        np.copyto(dst, src)
        times.append(time.perf_counter() - t0)
    return statistics.median(times) * 1e3


@dataclass
class RunFigures:
    """What one launched run cost, in its steady state."""

    name: str
    nodes: int
    params: int
    round_ms: float  # wall time per round: median over nodes of (end of last - end of first steady round) / rounds
    phases_ms: dict[str, float]  # mean per steady round, median over nodes
    cpu_ms: float  # process CPU per steady round by the node's own clock (all threads), median over nodes
    train_cpu_ms: float  # of which the local steps
    rss_mib: float  # median over nodes of the peak resident set (VmHWM)
    wall_s: float
    accuracy: float | None
    curve: list[tuple[int, float]] = field(default_factory=list)
    summary: dict[str, Any] = field(default_factory=dict)
    proc_cpu_ms: float = float("nan")  # CPU per steady round by /proc/PID/stat (utime + stime), median over nodes
    pss_mib: float = float("nan")  # median over nodes of the PSS sampled last before the end of the steady rounds
    shm_received: int | None = None  # models received through same-host shared memory, all nodes (None: no such count)

    @property
    def overhead_cpu(self) -> float:
        """Share of a round's CPU that is not local training: encode, send, receive, validate, mix, record."""
        return 1 - self.train_cpu_ms / self.cpu_ms if self.cpu_ms else float("nan")

    @property
    def overhead_wall(self) -> float:
        """Share of a round's wall time that is not the node's own training (includes waiting for the CPU)."""
        return 1 - self.phases_ms["train_s"] / self.round_ms if self.round_ms else float("nan")


def run_measured(name: str, overrides: Mapping[str, Any], *, warmup: float = 0.2, keep: bool = False) -> RunFigures:
    """Launch ``overrides`` as a real run (N node processes), sample their memory and CPU, return steady-state figures.

    The first ``warmup`` fraction of rounds (at least 5) and the last round (it evaluates) are skipped.
    """
    cfg = load_config(env={}, overrides=dict(overrides))
    tmp = Path(tempfile.mkdtemp(prefix="gossip-perf-"))
    run_dir = tmp / "run"
    t0 = time.perf_counter()
    with NodeSampler(str(run_dir), cfg.run.nodes) as sampler, open(os.devnull, "w") as sink:
        result = launch(cfg, run_dir=run_dir, progress=False, out=sink)
    wall = time.perf_counter() - t0
    if result.exit_code != 0:
        raise SystemExit(f"{name}: launch failed ({result.exit_code}); see {tmp}")
    rounds = cfg.training.rounds
    first = max(5, int(rounds * warmup))
    last = rounds - 2  # the final round evaluates: not steady state
    if last - first < 3:
        raise SystemExit(f"{name}: {rounds} rounds leave no steady state to measure")
    traces = {t.node: t for t in sampler.traces.values()}
    per_node_round: list[float] = []
    per_node_phase: dict[str, list[float]] = {p: [] for p in PHASES}
    cpu: list[float] = []
    train_cpu: list[float] = []
    proc_cpu: list[float] = []
    pss_end: list[int] = []
    accuracy: dict[int, list[float]] = {}
    for node, records in records_by_node(run_dir):
        by_round = {r["round"]: r for r in records}
        steady = [by_round[t] for t in range(first, last + 1)]
        per_node_round.append((steady[-1]["time"] - steady[0]["time"]) / (len(steady) - 1))
        for p in PHASES:
            per_node_phase[p].append(statistics.mean(r[p] for r in steady[1:]))
        cpu.append((steady[-1]["cpu_clock_s"] - steady[0]["cpu_clock_s"]) / (len(steady) - 1))
        train_cpu.append(statistics.mean(r["train_cpu_s"] for r in steady[1:]))
        if (trace := traces.get(node)) is not None:
            ends = [r["time"] for r in steady]
            if (c := cpu_per_round(trace.cpu, ends)) is not None:
                proc_cpu.append(c)
            if (v := pss_near(trace.pss, ends[-1])) is not None:
                pss_end.append(v)
        for r in records:
            if r["accuracy"] is not None:
                accuracy.setdefault(r["round"] + 1, []).append(r["accuracy"])
    hwm = [t.hwm for t in traces.values() if t.hwm]
    figures = RunFigures(
        name=name,
        nodes=cfg.run.nodes,
        params=_parameters(run_dir),
        round_ms=statistics.median(per_node_round) * 1e3,
        phases_ms={p: statistics.median(v) * 1e3 for p, v in per_node_phase.items()},
        cpu_ms=statistics.median(cpu) * 1e3,
        train_cpu_ms=statistics.median(train_cpu) * 1e3,
        rss_mib=statistics.median(hwm) / MiB if hwm else float("nan"),
        wall_s=wall,
        accuracy=result.summary.get("accuracy_mean"),
        curve=sorted((k, statistics.mean(v)) for k, v in accuracy.items()),
        summary=result.summary,
        proc_cpu_ms=statistics.median(proc_cpu) * 1e3 if proc_cpu else float("nan"),
        pss_mib=statistics.median(pss_end) / MiB if pss_end else float("nan"),
        shm_received=shared_memory_received(run_dir),
    )
    for what, got in (("peak RSS", len(hwm)), ("CPU from /proc", len(proc_cpu)), ("PSS", len(pss_end))):
        if got != cfg.run.nodes:
            print(f"  note: {name}: {what} read for {got} of {cfg.run.nodes} node processes", file=sys.stderr)
    if not keep:
        shutil.rmtree(tmp, ignore_errors=True)
    return figures


def _parameters(run_dir: Path) -> int:
    return int(json.loads((run_dir / "nodes" / "node-0.json").read_text())["parameters"])


def shared_memory_received(run_dir: Path) -> int | None:
    """Models the run's nodes received through same-host shared memory, from their summaries; None where a
    gossip without that path wrote none of the count."""
    counts = [json.loads(f.read_text()).get("shared_memory") for f in sorted((run_dir / "nodes").glob("node-*.json"))]
    return sum(int(c["received"]) for c in counts if c) if any(counts) else None


def median_figures(runs: Sequence[RunFigures]) -> RunFigures:
    """Field-wise median of repeated runs of one workload."""
    med = statistics.median
    return RunFigures(
        name=runs[0].name,
        nodes=runs[0].nodes,
        params=runs[0].params,
        round_ms=med(r.round_ms for r in runs),
        phases_ms={p: med(r.phases_ms[p] for r in runs) for p in PHASES},
        cpu_ms=med(r.cpu_ms for r in runs),
        train_cpu_ms=med(r.train_cpu_ms for r in runs),
        rss_mib=med(r.rss_mib for r in runs),
        wall_s=med(r.wall_s for r in runs),
        proc_cpu_ms=med(r.proc_cpu_ms for r in runs),
        pss_mib=med(r.pss_mib for r in runs),
        accuracy=med(r.accuracy for r in runs if r.accuracy is not None) if any(r.accuracy is not None for r in runs) else None,
        curve=runs[0].curve,
    )


def ring_workload(nodes: int, rounds: int, features: int, hidden: Sequence[int], **extra: Any) -> dict[str, Any]:
    """The benchmark workload: an N-node ring, 1/3 weights, one SGD step of batch 32 per round, synthetic data.

    Evaluation only at the end and no metrics endpoint: neither is part of a round's cost in the
    systems we compare with.
    """
    return {
        "run.nodes": nodes,
        "topology.spec": "ring",
        "topology.weights": "uniform",
        "training.rounds": rounds,
        "training.local_steps": 1,
        "training.lr": 0.05,
        "training.momentum": 0.0,
        "training.eval_every": rounds,
        "data.batch_size": 32,
        "data.dataset": "synthetic",
        "data.features": features,
        "model.name": "mlp",
        "model.hidden": list(hidden),
        "metrics.enabled": False,
        **extra,
    }
