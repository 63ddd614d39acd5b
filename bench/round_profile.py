"""Where a node's CPU goes in a round, by part of gossip, next to the copy floor measured in the same run.

    .venv/bin/python bench/round_profile.py [--rounds 100] [--large | --small] [--node 0] [--top N]

The workload of ``bench/round_time.py`` (8 node processes on a ring, weights 1/3, one SGD step of batch 32 per
round, synthetic data; ``--large`` the 1000-1000-10 MLP of 1M parameters, the default; ``--small`` 64-200-10).
Every node is its own ``python -m gossip node`` process started here; node ``--node`` runs under ``cProfile``. Its
profile is split by the file each function lives in, self time only, so every millisecond is counted once:

- training: ``gossip/learn`` and torch's autograd and optimiser frames below it (torch's own files);
- wire: ``gossip/net`` (encode, decode and its checks, the transport) and pyzmq;
- mixing: ``gossip/algorithms`` and ``gossip/node/mixer.py``;
- records, metrics: ``gossip/results``, ``gossip/node/records.py``, JSON; ``gossip/ops`` and prometheus_client;
- node: the rest of ``gossip/node`` (round loop, inbox, receiver);
- event loop: asyncio and selectors; other: everything else.

Figures are per round (the profile's totals divided by the rounds the node ran). cProfile adds a fixed cost to
every Python call, so the Python-heavy parts read high and torch's C++ kernels (a few calls each) read true; the
node's whole CPU per round without the profiler is printed beside it, from the same run's other nodes' records, and
the part of it outside the local steps (the process's CPU clock less the records' ``train_cpu_s``).
The copy floor is the median time of ``numpy.copyto`` of one model's bytes (float32) into a second buffer, measured
here in this run: a model crosses at least one such copy on each side of the wire, so a ring node's round (two
models out, two in) needs at least four; the table divides by both. ``--top N`` lists the N functions with the most
self time per round (the same difference of the two runs), with their part, to find what a part spends on.
"""

from __future__ import annotations

import argparse
import json
import os
import pstats
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from perfkit import copy_floor_ms, ring_workload

from gossip.config import config_to_toml, load_config
from gossip.results.rundir import read_jsonl
from gossip.run.ports import pick_ports

# the profiled node: gossip's own entry point under cProfile (``python -m gossip node`` would leave with os._exit,
# before cProfile writes its file; ``main(argv)`` returns)
PROFILED = (
    "import cProfile, sys\n"
    "from gossip.cli import main\n"
    "import time\n"
    "profile = cProfile.Profile(time.process_time)\n"
    "profile.runctx('main(argv)', {}, {'main': main, 'argv': sys.argv[2:]})\n"
    "profile.dump_stats(sys.argv[1])\n"
)
PARTS = (
    ("training", ("gossip/learn/", "torch/")),
    ("wire", ("gossip/net/", "zmq/")),
    ("mixing", ("gossip/algorithms/", "gossip/node/mixer.py")),
    ("records", ("gossip/results/", "gossip/node/records.py", "gossip/node/roundlog.py", "json/")),
    ("metrics", ("gossip/ops/", "prometheus_client/")),
    ("node", ("gossip/node/",)),
    ("event loop", ("asyncio/", "selectors.py")),
)


def part_of(filename: str) -> str:
    for part, markers in PARTS:
        if any(m in filename for m in markers):
            return part
    if filename.startswith("~") or filename == "{built-in}":
        return "built-ins"
    return "other"


def function_times(path: Path) -> dict[str, float]:
    """Self time in seconds by function (``file:line(name)``), built-ins as cProfile names them."""
    stats = pstats.Stats(str(path))
    return {f"{f}:{line}({name})": row[2] for (f, line, name), row in stats.stats.items()}  # type: ignore[attr-defined]


def profile_parts(path: Path) -> dict[str, float]:
    """Self time in seconds by part; a built-in method is charged to the part of the function that called it."""
    stats = pstats.Stats(str(path))
    out: dict[str, float] = {}
    for (filename, _line, _name), (_cc, _nc, tottime, _ct, callers) in stats.stats.items():  # type: ignore[attr-defined]
        part = part_of(filename)
        if part == "built-ins" and callers:
            caller_time: dict[str, float] = {}
            for (cfile, _cl, _cn), edge in callers.items():
                caller_time[part_of(cfile)] = caller_time.get(part_of(cfile), 0.0) + edge[2]
            total = sum(caller_time.values()) or 1.0
            for p, t in caller_time.items():
                out[p] = out.get(p, 0.0) + tottime * t / total
            continue
        out[part] = out.get(part, 0.0) + tottime
    return out


def profiled_run(
    features: int, hidden: list[int], rounds: int, node: int
) -> tuple[dict[str, float], dict[str, float], int, list[tuple[float, float]]]:
    """One run of 8 node processes, ``node`` under cProfile: its self CPU by part and by function, the model's size,
    and each other node's CPU per round: the whole process's, and its local steps' (ms)."""
    nodes = 8
    base = pick_ports("127.0.0.1", nodes, None, "bench")[0]
    overrides = {**ring_workload(nodes, rounds, features, hidden), "transport.base_port": base}
    cfg = load_config(env={}, overrides=overrides)
    with tempfile.TemporaryDirectory(prefix="gossip-profile-") as tmp_name:
        tmp = Path(tmp_name)
        (tmp / "config.toml").write_text(config_to_toml(cfg))
        run_dir = tmp / "run"
        prof = tmp / "node.prof"
        env = {**os.environ, "OMP_NUM_THREADS": "1"}
        procs = []
        for i in range(nodes):
            head = [sys.executable, "-c", PROFILED, str(prof)] if i == node else [sys.executable, "-m", "gossip"]
            cmd = [*head, "node", "--config", str(tmp / "config.toml"), "--id", str(i), "--run-dir", str(run_dir)]
            procs.append(subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env))
        for proc in procs:
            proc.wait(timeout=900)
        if any(proc.returncode for proc in procs):
            raise SystemExit(f"bench/round_profile.py: a node failed: {[proc.returncode for proc in procs]}")
        numel = int(json.loads((run_dir / "nodes" / f"node-{node}.json").read_text())["parameters"])
        others = []
        for i in range(nodes):
            if i != node:
                rs = read_jsonl(run_dir / "nodes" / f"node-{i}.jsonl")[5:-1]
                whole = (rs[-1]["cpu_clock_s"] - rs[0]["cpu_clock_s"]) / (len(rs) - 1) * 1e3
                others.append((whole, statistics.fmean(r["train_cpu_s"] for r in rs[1:]) * 1e3))
        return profile_parts(prof), function_times(prof), numel, others


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter)
    size = p.add_mutually_exclusive_group()
    size.add_argument("--large", action="store_true", help="the 1000-1000-10 MLP, 1M parameters (the default)")
    size.add_argument("--small", action="store_true", help="the 64-200-10 MLP, 15k parameters")
    p.add_argument("--rounds", type=int, default=200, help="rounds of the longer run (default 200; the shorter runs a fifth)")
    p.add_argument("--node", type=int, default=0, help="the node run under cProfile (default 0)")
    p.add_argument("--top", type=int, default=0, help="also list the N functions with the most self time per round")
    args = p.parse_args()
    features, hidden = (64, [200]) if args.small else (1000, [1000])
    short = max(10, args.rounds // 5)
    parts_short, funcs_short, numel, _ = profiled_run(features, hidden, short, args.node)
    parts_long, funcs_long, numel, others = profiled_run(features, hidden, args.rounds, args.node)
    floor = copy_floor_ms(numel)
    # the longer run's profile less the shorter one's: start-up, data, handshake and exit cancel out
    parts = {k: parts_long.get(k, 0.0) - parts_short.get(k, 0.0) for k in set(parts_long) | set(parts_short)}
    nodes = 8
    rounds = args.rounds - short
    training = parts.get("training", 0.0) / rounds * 1e3
    outside = parts.pop("other", 0.0) + parts.pop("built-ins", 0.0)  # start-up and exit: cancel but for their noise
    total = sum(parts.values()) / rounds * 1e3
    print(
        f"node {args.node} of {nodes}, {numel:,} parameters, under cProfile: CPU self time per round, "
        f"the run of {args.rounds} rounds less the run of {short}"
    )
    round_floor = 4 * floor  # a ring: two models sent and two received a round, one copy each at least
    print("| part | ms per round | × one model's copy | × the round's copies |")
    print("|---|---:|---:|---:|")
    for part in (name for name, _ in PARTS):
        ms = parts.get(part, 0.0) / rounds * 1e3
        if ms:
            print(f"| {part} | {ms:.2f} | {ms / floor:.1f} | {ms / round_floor:.1f} |")
    print(f"| all (profiled) | {total:.2f} | {total / floor:.1f} | {total / round_floor:.1f} |")
    rest = total - training
    print(f"| all but training (profiled) | {rest:.2f} | {rest / floor:.1f} | {rest / round_floor:.1f} |")
    print(
        f"\noutside these parts (start-up, imports, exit: the two runs' difference is their noise): {outside / rounds * 1e3:.2f} ms per round"
    )
    print(f"copy floor: numpy.copyto of {numel * 4 / 2**20:.1f} MiB, median of 200, measured in this run: {floor:.3f} ms")
    whole = [w for w, _t in others]
    rest_cpu = [w - t for w, t in others]
    print(
        f"the other {nodes - 1} nodes, not profiled: CPU per round {statistics.median(whole):.2f} ms (median; range {min(whole):.2f}–{max(whole):.2f}); "
        f"outside the local steps (the process's CPU less the records' train_cpu_s) {statistics.median(rest_cpu):.2f} ms "
        f"(range {min(rest_cpu):.2f}–{max(rest_cpu):.2f}), {statistics.median(rest_cpu) / round_floor:.1f} × the round's copies"
    )
    if args.top:
        print_top(funcs_long, funcs_short, rounds, args.top)


def print_top(long: dict[str, float], short: dict[str, float], rounds: int, n: int) -> None:
    """The ``n`` functions with the most self time per round, the longer run less the shorter one."""
    per_round = {k: (long.get(k, 0.0) - short.get(k, 0.0)) / rounds * 1e3 for k in long}
    print(f"\nthe {n} functions with the most self time per round (ms; the part is by file, built-ins unattributed):")
    for name, ms in sorted(per_round.items(), key=lambda kv: -kv[1])[:n]:
        where = name.split("site-packages/")[-1].split("/work/")[-1]
        print(f"  {ms:7.3f}  {part_of(name.rsplit(':', 1)[0])[:10]:10}  {where}")


if __name__ == "__main__":
    main()
