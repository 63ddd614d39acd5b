"""An open network under churn on real processes, against a fixed topology of the same size.

    .venv/bin/python bench/membership.py [--first 8] [--joiners 8] [--graceful 2] [--killed 2] [--degree 3]

``gossip launch`` starts ``--first`` members (each but the first knows only the first's address); once they
train, ``--joiners`` more start with ``gossip node --join``, each through one member drawn at random (never
the first); once those train, ``--graceful`` members get SIGTERM and ``--killed`` get SIGKILL; after the
failure timeout and some slack every remaining member is stopped with SIGTERM. Then a fixed-topology async
run with as many nodes as remained (a random regular graph of the same degree) runs for the same time.

It prints:

- the overlay sampled every second from the moment every joiner trains: live members, whether the links among
  them form one component, their degree min/mean/max;
- per joiner: the steps it took to come within 0.05 of the first members' best accuracy at that time;
- at the end: members below the target degree, and the consensus distance of the final models (the mean
  distance of a member's model to the average of all), next to the fixed topology's.

Every figure is measured in this run, on this machine.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import networkx as nx
import numpy as np

from gossip.results.rundir import read_jsonl
from gossip.run.ports import pick_ports
from tests.procs import node_pids

FAILURE_TIMEOUT_S = 2.0


def settings(degree: int) -> list[str]:
    return [
        "membership.enabled=true",
        "training.mode=async",
        f"membership.degree={degree}",
        "membership.heartbeat_s=0.25",
        f"membership.failure_timeout_s={FAILURE_TIMEOUT_S}",
        "membership.shuffle_period_s=0.5",
        "training.period_s=0.1",
        "training.eval_every=5",
        "metrics.enabled=false",
    ]


def sets(items: list[str]) -> list[str]:
    return [x for s in items for x in ("--set", s)]


def records(run_dir: Path, i: int) -> list[dict[str, Any]]:
    path = run_dir / "nodes" / f"node-{i}.jsonl"
    return read_jsonl(path) if path.exists() else []


def wait(done: Any, what: str, timeout_s: float = 300) -> None:
    deadline = time.monotonic() + timeout_s
    while not done():
        if time.monotonic() > deadline:
            raise SystemExit(f"bench/membership.py: {what} did not happen within {timeout_s:g} s")
        time.sleep(0.2)


def open_run(args: argparse.Namespace, tmp: Path) -> dict[str, Any]:
    run_dir = tmp / "open"
    ports = pick_ports("127.0.0.1", args.first + args.joiners, None, "bench")
    rng = random.Random(args.seed)
    gossip = [sys.executable, "-m", "gossip"]
    common = ["--dataset", "digits", "--model", "logreg", "--seed", str(args.seed)]
    launcher = subprocess.Popen(
        [*gossip, "launch", "-n", str(args.first), "-t", "ring", "-r", "1000000", "--run-dir", str(run_dir), "--no-progress", "--no-report",
         "--keep-going", "--base-port", str(ports[0]), *common, *sets(settings(args.degree))],
        stdout=subprocess.DEVNULL, stderr=open(tmp / "launch.log", "wb"), start_new_session=True,
    )  # fmt: skip
    wait(lambda: all(len(records(run_dir, i)) >= 20 for i in range(args.first)), "the first members training")
    joiners = list(range(args.first, args.first + args.joiners))
    procs = {}
    for k, j in enumerate(joiners):
        contact = f"tcp://127.0.0.1:{ports[0] + rng.randrange(1, args.first)}"
        procs[j] = subprocess.Popen(
            [*gossip, "node", "--config", str(run_dir / "config.toml"), "--id", str(j), "--run-dir", str(run_dir),
             "--address", f"tcp://127.0.0.1:{ports[args.first + k]}", "--join", contact],
            stdout=subprocess.DEVNULL, stderr=open(tmp / f"joiner-{j}.log", "wb"), start_new_session=True,
        )  # fmt: skip
    wait(lambda: all(len(records(run_dir, j)) >= 40 for j in joiners), "the joiners training")
    everyone = [*range(args.first), *joiners]
    leaving = rng.sample(everyone[1:], args.graceful + args.killed)
    graceful, killed = leaving[: args.graceful], leaving[args.graceful :]
    pids = node_pids(run_dir)
    departed_at = time.time()
    for i in graceful:
        os.kill(pids[i], signal.SIGTERM)
    for i in killed:
        os.kill(pids[i], signal.SIGKILL)
    time.sleep(3 * FAILURE_TIMEOUT_S + 3.0)
    checked_at = time.time()
    time.sleep(1.0)
    launcher.send_signal(signal.SIGTERM)
    for p in procs.values():
        p.send_signal(signal.SIGTERM)
    for p in (launcher, *procs.values()):
        p.wait(timeout=120)
    started = min(r["time"] for r in records(run_dir, 0))
    return {
        "run_dir": run_dir, "joiners": joiners, "gone": set(leaving), "graceful": graceful, "killed": killed, "everyone": everyone,
        "departed_at": departed_at, "checked_at": checked_at, "seconds": checked_at - started,
    }  # fmt: skip


def latest(rs: list[dict[str, Any]], at: float) -> dict[str, Any] | None:
    before = [r for r in rs if r["time"] <= at]
    return before[-1] if before else None


def overlay_table(run: dict[str, Any], degree: int) -> list[str]:
    run_dir = run["run_dir"]
    rs = {i: records(run_dir, i) for i in run["everyone"]}
    t = max(rs[j][0]["time"] for j in run["joiners"])
    t0 = min(r[0]["time"] for r in rs.values() if r)
    lines = ["| t (s) | live | connected | degree min / mean / max | below degree |", "|---:|---:|:---:|---|---:|"]
    while t <= run["checked_at"]:
        graph = nx.Graph()
        degrees = []
        for i, r in rs.items():
            record = latest(r, t)
            if record is None or (i in run["gone"] and t >= run["departed_at"]):
                continue
            graph.add_node(i)
        for i in graph.nodes:
            record = latest(rs[i], t)
            assert record is not None
            graph.add_edges_from((i, j) for j in record["neighbours"] if j in graph)
            degrees.append(len(record["neighbours"]))
        mark = " ← departures" if abs(t - run["departed_at"]) < 0.5 else ""
        lines.append(
            f"| {t - t0:.0f}{mark} | {graph.number_of_nodes()} | {'yes' if nx.is_connected(graph) else 'NO'} | "
            f"{min(degrees)} / {statistics.mean(degrees):.1f} / {max(degrees)} | {sum(d < degree for d in degrees)} |"
        )
        t += 1.0
    return lines


def joiner_steps(run: dict[str, Any]) -> list[str]:
    run_dir = run["run_dir"]
    lines = ["| joiner | joined through | started from | steps to within 0.05 of the first members' best |", "|---:|---|---|---:|"]
    first = [i for i in run["everyone"] if i not in run["joiners"] and i not in run["gone"]]
    for j in run["joiners"]:
        path = run_dir / "nodes" / f"node-{j}.json"
        summary = json.loads(path.read_text())["membership"] if path.exists() else {}  # a killed member wrote none
        steps = "not reached"
        for r in records(run_dir, j):
            if r["accuracy"] is None:
                continue
            theirs = [latest([x for x in records(run_dir, i) if x["accuracy"] is not None], r["time"]) for i in first]
            best = max((x["accuracy"] for x in theirs if x), default=float("nan"))
            if r["accuracy"] >= best - 0.05:
                steps = str(r["round"] + 1)
                break
        through, start = (summary["joined_through"], f"{len(summary['synced_from'])} models") if summary else ("(killed: no summary)", "?")
        lines.append(f"| {j} | {through} | {start} | {steps} |")
    return lines


def consensus_distance(run_dir: Path, nodes: list[int]) -> tuple[float, float]:
    """(mean distance of a final model to the average of all, mean final accuracy)."""
    models = np.stack([np.load(run_dir / "nodes" / f"node-{i}.npy") for i in nodes])
    mean = models.mean(axis=0)
    accuracy = [json.loads((run_dir / "nodes" / f"node-{i}.json").read_text())["accuracy"] for i in nodes]
    return float(np.linalg.norm(models - mean, axis=1).mean()), float(statistics.mean(accuracy))


def fixed_run(args: argparse.Namespace, tmp: Path, n: int, seconds: float) -> Path:
    run_dir = tmp / "fixed"
    fixed = [s for s in settings(args.degree) if not s.startswith("membership.")] + [f"training.duration_s={seconds:.0f}"]
    subprocess.run(
        [sys.executable, "-m", "gossip", "launch", "-n", str(n), "-t", f"regular:d={args.degree}", "-r", "1000000", "--run-dir", str(run_dir),
         "--no-progress", "--no-report", "--dataset", "digits", "--model", "logreg", "--seed", str(args.seed), *sets(fixed)],
        stdout=subprocess.DEVNULL, stderr=open(tmp / "fixed.log", "wb"), check=True,
    )  # fmt: skip
    return run_dir


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--first", type=int, default=8, help="members gossip launch starts (default 8)")
    p.add_argument("--joiners", type=int, default=8, help="members that join mid-run (default 8)")
    p.add_argument("--graceful", type=int, default=2, help="members stopped with SIGTERM (default 2)")
    p.add_argument("--killed", type=int, default=2, help="members killed with SIGKILL (default 2)")
    p.add_argument("--degree", type=int, default=3, help="[membership] degree (default 3)")
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args()
    with tempfile.TemporaryDirectory(prefix="gossip-membership-") as tmp_name:
        tmp = Path(tmp_name)
        t0 = time.monotonic()
        run = open_run(args, tmp)
        print(f"open network: {args.first} members, {args.joiners} joined, SIGTERM {run['graceful']}, SIGKILL {run['killed']}")
        print("\n".join(overlay_table(run, args.degree)))
        print()
        print("\n".join(joiner_steps(run)))
        remaining = [i for i in run["everyone"] if i not in run["gone"]]
        open_cd, open_acc = consensus_distance(run["run_dir"], remaining)
        fixed_dir = fixed_run(args, tmp, len(remaining), run["seconds"])
        fixed_cd, fixed_acc = consensus_distance(fixed_dir, list(range(len(remaining))))
        print()
        print("| run | nodes at the end | consensus distance | mean accuracy |")
        print("|---|---:|---:|---:|")
        print(f"| open network under churn | {len(remaining)} | {open_cd:.4f} | {open_acc:.4f} |")
        print(f"| fixed regular graph, degree {args.degree}, same time | {len(remaining)} | {fixed_cd:.4f} | {fixed_acc:.4f} |")
        print(f"\n({time.monotonic() - t0:.0f} s)")


if __name__ == "__main__":
    main()
