"""What losing nodes costs: the hubs, random nodes, or nodes without data of a Barabási–Albert graph removed mid-run (Palmieri et al. 2023's disruption study).

    .venv/bin/python bench/disruption.py [--nodes 16] [--sim-nodes 100] [--rounds 60] [--remove-at 15] [--fraction 0.2]
                                         [--seeds 2] [--sim-seeds 3] [--timeout 2] [--only real|sim]
                                         [--scenarios none,hubs,random,no-data-hubs] [--quick]

One Barabási–Albert graph per seed (``ba:m=2``, the run's seed), IID digits, the MLP with one hidden layer of 32,
batch 8, sync D-SGD with Metropolis weights. At round ``--remove-at`` a set of ``round(fraction · N)`` nodes goes:

- none: nobody (the reference);
- hubs: the nodes of highest degree (ties: lowest id);
- random: nodes drawn at random (seeded);
- no-data-hubs: the same hubs, but they held no training data from the start (the samples are split IID among
  the other nodes), so removing them loses connectivity only. Against "hubs" it isolates what the data was worth;
  against "none" what the connectivity was worth.

Two settings print one table each:

- real processes: ``gossip launch --keep-going`` of ``--nodes`` node processes, the chosen nodes SIGKILLed once
  each has written ``--remove-at`` round records (the line under the table gives the rounds they had done), and
  ``transport.round_timeout_s = --timeout``: a dead neighbour costs its survivors about one such wait, then they
  stop waiting for it (gossip/node/liveness.py). 2 s, not less: at 0.5 s 4–18 % of a live run's models missed
  their round on this shared 2-core machine (the line under the table counts them in the undisturbed runs), and
  a missed model is a disruption of its own;
- simulation: ``gossip.run.simulate.simulate(cfg, removed={round: nodes})`` at ``--sim-nodes`` nodes: the removed
  models leave the mix and each survivor's weight on a removed neighbour goes to its own self weight, which is
  what a launched D-SGD node does with a neighbour whose model does not arrive (so the real and the simulated
  setting run the same math).

How nodes hold no data: the split is a plug-in, ``--partition disruption:no_data`` with ``partition_options``
``empty="3/7/12"``, marked ``allows_empty = True``. gossip refuses an empty part unless the split says it means
it, and a node with an empty part takes no local steps and only mixes, in its process and in the simulation
(both already trained on nothing when ``local_steps = 0``; the node no longer builds a training set it does not
have). That is the honest way: the nodes are real relays, not nodes with one sample or a zero learning rate.

The figure is the mean final accuracy of the surviving nodes per seed; the table gives its median and range over
seeds, the same for the survivors in the largest connected component, how many components the survivors form,
and the change against "none" on the same seed (median of the paired differences, in points and in % of the
median "none" accuracy). The last column quotes Palmieri et al.'s finding as a claim to compare with; it is
never an input of our numbers.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from gossip.results.rundir import NodeFiles
from tests.procs import node_pids

BENCH = Path(__file__).resolve().parent
SCENARIOS = ("none", "hubs", "random", "no-data-hubs")
CLAIMS = {
    "hubs": "“removing central nodes costs about 10–20 % accuracy against no disruption”",
    "no-data-hubs": "“losing connectivity hurts accuracy more than losing data”",
}


def no_data(num_samples: int, labels: object, nodes: int, seed: int, empty: object = "") -> list[np.ndarray]:
    """IID split of the training set among the nodes not named in ``empty`` ("3/7/12"); those get an empty part."""
    gone = {int(x) for x in str(empty).split("/") if x}
    holders = [i for i in range(nodes) if i not in gone]
    parts = [np.empty(0, dtype=np.int64) for _ in range(nodes)]
    for i, chunk in zip(holders, np.array_split(np.random.default_rng(seed).permutation(num_samples), len(holders)), strict=True):
        parts[i] = chunk
    return parts


no_data.allows_empty = True  # type: ignore[attr-defined]


@dataclass
class Arm:
    """One run of one scenario on one seed."""

    scenario: str
    seed: int
    nodes: int
    removed: list[int]
    accuracy: float  # mean over survivors
    largest: float  # mean over the survivors of the largest component
    components: int
    removed_at: list[int]  # rounds each removed node had recorded when it died (real runs; the simulation removes at the round)
    missed: int | None = None  # models that missed their round, over the run (real runs: summary.json's missed_messages)


def overrides(nodes: int, rounds: int, seed: int, timeout: float) -> dict[str, Any]:
    return {
        "run.nodes": nodes,
        "run.seed": seed,
        "topology.spec": "ba:m=2",
        "training.rounds": rounds,
        "training.eval_every": rounds,
        "data.dataset": "digits",
        "data.batch_size": 8,
        "model.hidden": [32],
        "transport.round_timeout_s": timeout,
        "metrics.enabled": False,
    }


def victims(scenario: str, degrees: Sequence[int], k: int, seed: int) -> list[int]:
    """The nodes a scenario removes: the ``k`` of highest degree, or ``k`` drawn at random, or nobody."""
    if scenario == "none":
        return []
    if scenario == "random":
        return sorted(int(i) for i in np.random.default_rng(seed).choice(len(degrees), k, replace=False))
    return sorted(sorted(range(len(degrees)), key=lambda i: (-degrees[i], i))[:k])


def survivor_components(edges: Sequence[tuple[int, int]], n: int, gone: Sequence[int]) -> list[set[int]]:
    """The connected components of the graph once ``gone`` left, largest first."""
    import networkx as nx

    graph = nx.Graph()
    graph.add_nodes_from(i for i in range(n) if i not in gone)
    graph.add_edges_from((u, v) for u, v in edges if u not in gone and v not in gone)
    return sorted(nx.connected_components(graph), key=len, reverse=True)


def _arm(scenario: str, seed: int, removed: list[int], acc: dict[int, float], comps: list[set[int]], at: list[int]) -> Arm:
    largest = [acc[i] for i in comps[0]]
    return Arm(scenario, seed, len(acc) + len(removed), removed, statistics.mean(acc.values()), statistics.mean(largest), len(comps), at)


def real_arm(scenario: str, seed: int, args: argparse.Namespace, root: Path) -> Arm:
    """One ``gossip launch`` of the scenario, its victims killed with SIGKILL once each has recorded ``--remove-at`` rounds."""
    from gossip.config import load_config
    from gossip.topology import topology_of

    cfg = load_config(env={}, overrides=overrides(args.nodes, args.rounds, seed, args.timeout))
    topo = topology_of(cfg)
    gone = victims(scenario, [topo.degree(i) for i in range(topo.n)], args.k_real, seed)
    run_dir = root / f"real-{scenario.replace(' ', '-')}-{seed}"
    flags = [f"{key}={json.dumps(value)}" for key, value in overrides(args.nodes, args.rounds, seed, args.timeout).items()]
    if scenario == "no-data-hubs":
        flags += ["data.partition=disruption:no_data", f"data.partition_options=empty={'/'.join(map(str, gone))}"]
    cmd = [sys.executable, "-m", "gossip", "launch", "--keep-going", "--no-progress", "--no-report", "--run-dir", str(run_dir)]
    cmd += [word for flag in flags for word in ("--set", flag)]
    env = dict(
        os.environ, OMP_NUM_THREADS="1", PYTHONPATH=os.pathsep.join([str(BENCH.parent), str(BENCH), os.environ.get("PYTHONPATH", "")])
    )
    with open(root / f"{run_dir.name}.log", "wb") as log:
        proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, env=env, start_new_session=True)
    at = _kill_at(run_dir, gone, args.remove_at, proc)
    if proc.wait() not in (0, 1):
        raise SystemExit(f"{run_dir}: launch exited {proc.returncode}; see {root / run_dir.name}.log")
    acc = {}
    for i in range(topo.n):
        if i not in gone:
            summary = json.loads(NodeFiles(run_dir, i).summary.read_text())
            acc[i] = summary["accuracy"]
    arm = _arm(scenario, seed, gone, acc, survivor_components(topo.edges, topo.n, gone), at)
    arm.missed = json.loads((run_dir / "summary.json").read_text())["missed_messages"]
    return arm


def _records(run_dir: Path, node: int) -> int:
    """How many round records node ``node`` has written (whole lines)."""
    try:
        return NodeFiles(run_dir, node).records.read_bytes().count(b"\n")
    except FileNotFoundError:
        return 0


def _kill_at(run_dir: Path, gone: Sequence[int], rounds: int, proc: subprocess.Popen[bytes]) -> list[int]:
    """SIGKILL each of ``gone`` once it has recorded ``rounds`` rounds; the rounds each had recorded when it died.

    The victims' pids are looked up once, before round 1 (a scan of /proc is slow next to a round), so a victim
    is killed within a poll of reaching its round.
    """
    deadline = time.monotonic() + 600
    pids: dict[int, int] = {}
    waiting = set(gone)
    while waiting:
        if proc.poll() is not None or time.monotonic() > deadline:
            raise SystemExit(f"{run_dir}: the run ended or stalled before nodes {sorted(waiting)} reached round {rounds}")
        if len(pids) < len(gone):
            pids = {i: pid for i, pid in node_pids(run_dir).items() if i in waiting}
            time.sleep(0.01)
            continue
        for i in sorted(waiting):
            if _records(run_dir, i) >= rounds:
                os.kill(pids[i], signal.SIGKILL)
                waiting.discard(i)
        time.sleep(0.002)
    time.sleep(0.2)  # a record written as the signal landed
    return [_records(run_dir, i) for i in sorted(gone)]


def sim_arm(scenario: str, seed: int, args: argparse.Namespace, dataset: Any) -> Arm:
    """One simulation of the scenario at ``--sim-nodes`` nodes: the victims removed at ``--remove-at``."""
    from gossip.config import load_config
    from gossip.run.simulate import simulate
    from gossip.topology import topology_of

    cfg = load_config(env={}, overrides=overrides(args.sim_nodes, args.rounds, seed, args.timeout))
    topo = topology_of(cfg)
    gone = victims(scenario, [topo.degree(i) for i in range(topo.n)], args.k_sim, seed)
    if scenario == "no-data-hubs":
        more = {"data.partition": "disruption:no_data", "data.partition_options": [f"empty={'/'.join(map(str, gone))}"]}
        cfg = load_config(env={}, overrides={**overrides(args.sim_nodes, args.rounds, seed, args.timeout), **more})
    result = simulate(cfg, dataset=dataset, topology=topo, removed={args.remove_at: gone} if gone else {})
    acc = {i: float(a) for i, a in enumerate(result.accuracy) if i not in gone}
    return _arm(scenario, seed, gone, acc, survivor_components(topo.edges, topo.n, gone), [])


def _spread(values: Sequence[float], scale: float = 1.0, digits: int = 3) -> str:
    lo, mid, hi = min(values) * scale, statistics.median(values) * scale, max(values) * scale
    return f"{mid:.{digits}f} ({lo:.{digits}f} – {hi:.{digits}f})" if len(values) > 1 else f"{mid:.{digits}f}"


def table(title: str, arms: list[Arm]) -> None:
    """One Markdown table: a row per scenario, its figures over the seeds."""
    print(f"\n{title}\n")
    print(
        "| scenario | nodes removed | survivors | components | accuracy of survivors | largest component | change vs none | Palmieri et al. 2023 |"
    )
    print("|---|---|---|---|---|---|---|---|")
    base = {a.seed: a.accuracy for a in arms if a.scenario == "none"}
    for scenario in SCENARIOS:
        rows = [a for a in arms if a.scenario == scenario]
        if not rows:
            continue
        n = len(rows[0].removed)
        survivors = sorted({a.nodes - len(a.removed) for a in rows})
        removed = (
            "–"
            if not n
            else ", ".join(f"seed {a.seed}: {a.removed}" for a in rows)
            if n <= 5
            else f"{n} each (the hubs: highest degree)"
            if "hubs" in scenario
            else f"{n} each"
        )
        diffs = [a.accuracy - base[a.seed] for a in rows if a.seed in base]
        change = ""
        if scenario != "none" and diffs:
            pct = [d / base[a.seed] * 100 for d, a in zip(diffs, rows, strict=True)]
            change = f"{_spread(diffs, 100, 1)} points, {_spread(pct, 1, 1)} %"
        comps = sorted({a.components for a in rows})
        print(
            f"| {scenario} | {removed} | {survivors[0]} | {'–'.join(map(str, (comps[0], comps[-1]) if len(comps) > 1 else comps))} "
            f"| {_spread([a.accuracy for a in rows])} | {_spread([a.largest for a in rows])} | {change} | {CLAIMS.get(scenario, '')} |"
        )
    by = {(a.scenario, a.seed): a.accuracy for a in arms}
    seeds = sorted({a.seed for a in arms})
    if all((s, seed) in by for s in ("none", "hubs", "no-data-hubs") for seed in seeds):
        connectivity = [by["no-data-hubs", seed] - by["none", seed] for seed in seeds]
        data = [by["hubs", seed] - by["no-data-hubs", seed] for seed in seeds]
        print(
            f"\nThe hubs' cost split in two, per seed: their connectivity (no-data hubs against none) {_spread(connectivity, 100, 1)} "
            f"points; their data on top (hubs against no-data hubs) {_spread(data, 100, 1)} points."
        )
    real_at = sorted({r for a in arms for r in a.removed_at})
    if real_at:
        print(f"\nRemoved nodes had recorded rounds: {real_at[0]}–{real_at[-1]} when they went.")
    missed = [a.missed for a in arms if a.scenario == "none" and a.missed is not None]
    if missed:
        print(
            f"Models that missed their round in the undisturbed runs: {', '.join(map(str, missed))} (a real run repeats itself "
            "exactly only when every model arrives in time; on a loaded machine some wait out the round timeout)."
        )


def real_setting(args: argparse.Namespace, root: Path) -> tuple[str, list[Arm]]:
    """Every scenario on every seed, as real processes; the table's title and its arms."""
    arms = []
    for seed in range(args.seeds):
        for scenario in args.scenarios:
            arms.append(real_arm(scenario, seed, args, root))
            print(f"  real {scenario} seed {seed}: {arms[-1]}", file=sys.stderr, flush=True)
    title = f"Real processes: {args.nodes} nodes, {args.k_real} removed at round {args.remove_at} of {args.rounds}"
    return f"{title}, seeds 0–{args.seeds - 1}", arms


def sim_setting(args: argparse.Namespace) -> tuple[str, list[Arm]]:
    """Every scenario on every seed, simulated; the dataset is read once."""
    sys.path.insert(0, str(BENCH))  # the no-data split, for the simulation's own process
    from gossip.config import load_config
    from gossip.data.datasets import dataset_of

    dataset = dataset_of(load_config(env={}, overrides=overrides(args.sim_nodes, args.rounds, 0, args.timeout)))
    arms = []
    for seed in range(args.sim_seeds):
        for scenario in args.scenarios:
            arms.append(sim_arm(scenario, seed, args, dataset))
            print(f"  sim {scenario} seed {seed}: {arms[-1]}", file=sys.stderr, flush=True)
    title = f"Simulation: {args.sim_nodes} nodes, {args.k_sim} removed at round {args.remove_at} of {args.rounds}"
    return f"{title}, seeds 0–{args.sim_seeds - 1}", arms


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--nodes", type=int, default=16, help="real node processes (default 16)")
    p.add_argument("--sim-nodes", type=int, default=100, help="simulated nodes (default 100)")
    p.add_argument("--rounds", type=int, default=60)
    p.add_argument("--remove-at", type=int, default=15, help="the round the nodes are removed at (default 15)")
    p.add_argument("--fraction", type=float, default=0.2, help="share of the nodes removed (default 0.2)")
    p.add_argument("--seeds", type=int, default=2, help="seeds of the real runs (default 2)")
    p.add_argument("--sim-seeds", type=int, default=3, help="seeds of the simulations (default 3)")
    p.add_argument("--timeout", type=float, default=2.0, help="transport.round_timeout_s (default 2)")
    p.add_argument("--only", choices=("real", "sim"))
    p.add_argument(
        "--scenarios",
        type=lambda text: text.split(","),
        default=list(SCENARIOS),
        help=f"comma-separated, of {', '.join(SCENARIOS)} (default: all)",
    )
    p.add_argument("--quick", action="store_true", help="one seed, 8 real and 24 simulated nodes, 20 rounds (a smoke run)")
    p.add_argument("--keep", action="store_true", help="keep the run directories (printed)")
    args = p.parse_args()
    unknown = sorted(set(args.scenarios) - set(SCENARIOS))
    if unknown:
        p.error(f"unknown scenario {unknown[0]!r}; known: {', '.join(SCENARIOS)}")
    if args.quick:
        args.nodes, args.sim_nodes, args.rounds, args.remove_at, args.seeds, args.sim_seeds = 8, 24, 20, 5, 1, 1
    args.k_real, args.k_sim = max(1, round(args.fraction * args.nodes)), max(1, round(args.fraction * args.sim_nodes))
    root = Path(tempfile.mkdtemp(prefix="gossip-disruption-"))
    load_before = " ".join(open("/proc/loadavg").read().split()[:3])
    settings = []
    if args.only != "sim":
        settings.append(real_setting(args, root))
    if args.only != "real":
        settings.append(sim_setting(args))
    print(
        f"\nBarabási–Albert m=2, IID digits, MLP 64-32-10, batch 8, D-SGD (Metropolis), {args.rounds} rounds; "
        f"accuracy: median (range) over seeds of the survivors' mean final accuracy"
    )
    for title, arms in settings:
        table(title, arms)
    print(f"\nLoad average before / after: {load_before} / {' '.join(open('/proc/loadavg').read().split()[:3])} (the machine is shared).")
    if args.keep:
        print(f"run directories: {root}")
    else:
        import shutil

        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
