"""Round overhead: what a D-SGD round costs beyond its local training, measured against the same training without gossip.

    .venv/bin/python bench/overhead.py [--repeat 3] [--steps 1,10,50] [--only 1M]

Same workload as bench/round_time.py (8-node ring, weights 1/3, SGD steps of batch 32, synthetic
data), MLPs of about 10k (64-128-10), 1M (1000-1000-10) and 10M (1000-10000-10) parameters, with
``--steps`` local steps per round. Every configuration runs twice, interleaved ``--repeat`` times
(medians), on the same machine in the same minutes:

- **gossip**: the real run, N node processes exchanging models every round over loopback TCP;
- **gossip, ipc**: the same over Unix-domain sockets (``gossip launch --ipc``);
- **gossip, shm**: the same with models through same-host shared memory (the default on one machine; the two
  arms above turn it off, ``transport.shared_memory = false``);
- **local only**: the same N processes and the same local steps with the exchange switched off
  (``schedule.mode = "none"``): the local-training time of a round *on this machine*, time-sharing of
  the cores between N processes included.

- **raw floor** (bench/rawdsgd.py): the same ring, model and local steps in N processes that do
  nothing but train on a fixed batch, send the live vector zero-copy over raw pyzmq PUSH, block on raw
  PULL and mix in three passes — no validation, records, event loop or headers — and the same
  processes with the exchange off: what a D-SGD round of this size costs on this machine at the least;
- **raw + checks**: the raw floor plus what a node cannot skip — decode's NaN/inf check of each
  received model, the node's lerp mix and the consensus distance every round reports — and nothing
  else: gossip's gap to this arm is its own machinery (event loop, headers, routing, records, metrics).

**Overhead, wall** = 1 − (local-only round time / gossip round time): the "round wall time
minus its local-training time, as a fraction of the round", with the local-training time measured
the only fair way on a machine with fewer cores than nodes (a node's own step timer would count the
minutes its neighbours hold the cores as overhead). **Overhead, CPU** is the same from CPU clocks:
of the CPU a node process burns per round (every thread: ZeroMQ's I/O thread, the receive loop,
bookkeeping), the part the local-only arm does not burn. What a round moves per node is fixed
(2 models out, 2 in), so the overhead falls as local work per round grows; the table shows where.
**Exchange CPU** = CPU per round minus the local-only arm's: what moving and mixing the models costs a
node, gossip against the raw floor (their ratio is how close gossip is to the wire's limit).
"""

from __future__ import annotations

import argparse
import statistics
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from perfkit import median_figures, ring_workload, run_measured
from rawdsgd import RawFigures, run_raw

SIZES = {"10k": (64, (128,)), "1M": (1000, (1000,)), "10M": (1000, (10000,))}  # features, hidden
BUDGET = {"10k": 0.4, "1M": 4.0, "10M": 60.0}  # rough CPU ms per local step, to size the rounds of a run


def rounds_for(size: str, steps: int, nodes: int) -> int:
    """Enough rounds for a steady state, about 10-20 s of wall time per run on 2 cores."""
    per_round_s = nodes * (BUDGET[size] * steps + 8 * BUDGET[size]) / 1e3 / 2
    return int(min(200, max(20, 15 / per_round_s)))


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--repeat", type=int, default=3)
    p.add_argument("--nodes", type=int, default=8)
    p.add_argument("--steps", default="1,10,50", help="local SGD steps per round, comma-separated")
    p.add_argument("--only", choices=sorted(SIZES), action="append")
    args = p.parse_args()
    names = args.only or list(SIZES)
    steps = [int(s) for s in args.steps.split(",")]
    arms = {
        "gossip": {"transport.shared_memory": False},
        "gossip, ipc": {"transport.address_template": "ipc://", "transport.shared_memory": False},
        "gossip, shm": {},
        "local only": {"schedule.mode": "none"},
    }
    runs: dict[tuple[str, int, str], list] = {}
    raws: dict[tuple[str, int, str], list[RawFigures]] = {}
    for rep in range(args.repeat):
        for name in names:
            features, hidden = SIZES[name]
            for k in steps:
                rounds = rounds_for(name, k, args.nodes)
                for arm, extra in arms.items():
                    work = ring_workload(
                        args.nodes,
                        rounds,
                        features,
                        hidden,
                        **{"data.train_samples": 4000, "data.test_samples": 200, "training.local_steps": k, **extra},
                    )
                    fig = run_measured(f"{name} {k} steps {arm}", work)
                    runs.setdefault((name, k, arm), []).append(fig)
                    print(
                        f"  repeat {rep + 1}/{args.repeat} {name}, {k} steps, {arm}: {fig.round_ms:.1f} ms/round, "
                        f"CPU {fig.cpu_ms:.1f} ms/round",
                        file=sys.stderr,
                        flush=True,
                    )
                for arm, exchange, checks in (("raw", True, False), ("raw + checks", True, True), ("raw local only", False, False)):
                    raw = run_raw(args.nodes, rounds, features, hidden, k, exchange=exchange, checks=checks)
                    raws.setdefault((name, k, arm), []).append(raw)
                    print(
                        f"  repeat {rep + 1}/{args.repeat} {name}, {k} steps, {arm}: {raw.round_ms:.1f} ms/round, "
                        f"CPU {raw.cpu_ms:.1f} ms/round",
                        file=sys.stderr,
                        flush=True,
                    )
    print(f"\n{args.nodes}-node ring on this machine, SGD steps of batch 32; median of {args.repeat} interleaved runs\n")
    print(
        "| params | local steps | round ms: gossip / ipc / shm / local only | overhead, wall: gossip | ipc | shm "
        "| CPU ms/round: gossip / ipc / shm / local only | overhead, CPU: gossip | ipc | shm |"
    )
    print("|---|---|---|---|---|---|---|---|---|---|")
    for name in names:
        for k in steps:
            g, i, m, l = (median_figures(runs[(name, k, arm)]) for arm in arms)
            print(
                f"| {g.params:,} | {k} | {g.round_ms:.1f} / {i.round_ms:.1f} / {m.round_ms:.1f} / {l.round_ms:.1f} "
                f"| {1 - l.round_ms / g.round_ms:.1%} | {1 - l.round_ms / i.round_ms:.1%} | {1 - l.round_ms / m.round_ms:.1%} "
                f"| {g.cpu_ms:.2f} / {i.cpu_ms:.2f} / {m.cpu_ms:.2f} / {l.cpu_ms:.2f} "
                f"| {1 - l.cpu_ms / g.cpu_ms:.1%} | {1 - l.cpu_ms / i.cpu_ms:.1%} | {1 - l.cpu_ms / m.cpu_ms:.1%} |"
            )
    print(
        "\nThe floor: the same ring with raw pyzmq and a bare mix (bench/rawdsgd.py), and with only the checks and the consensus distance"
    )
    print("a node cannot skip (raw + checks); exchange CPU = CPU per round above the arm's local-only\n")
    print(
        "| params | local steps | round ms: raw / raw + checks / raw local only | overhead, wall: raw floor | raw + checks | gossip "
        "| exchange CPU ms/round: raw floor | raw + checks | gossip | ipc | shm | raw floor / gossip | raw + checks / gossip "
        "| raw + checks / shm |"
    )
    print("|---|---|---|---|---|---|---|---|---|---|---|---|---|---|")
    med = statistics.median
    for name in names:
        for k in steps:
            g, i, m, l = (median_figures(runs[(name, k, arm)]) for arm in arms)
            (r_ms, r_cpu), (c_ms, c_cpu), (rl_ms, rl_cpu) = (
                (med(f.round_ms for f in raws[(name, k, arm)]), med(f.cpu_ms for f in raws[(name, k, arm)]))
                for arm in ("raw", "raw + checks", "raw local only")
            )
            raw_x, c_x, g_x, i_x = r_cpu - rl_cpu, c_cpu - rl_cpu, g.cpu_ms - l.cpu_ms, i.cpu_ms - l.cpu_ms
            m_x = m.cpu_ms - l.cpu_ms
            print(
                f"| {g.params:,} | {k} | {r_ms:.1f} / {c_ms:.1f} / {rl_ms:.1f} | {1 - rl_ms / r_ms:.1%} | {1 - rl_ms / c_ms:.1%} | {1 - l.round_ms / g.round_ms:.1%} "
                f"| {raw_x:.2f} | {c_x:.2f} | {g_x:.2f} | {i_x:.2f} | {m_x:.2f} | {raw_x / g_x:.2f} | {c_x / g_x:.2f} | {c_x / m_x:.2f} |"
            )


if __name__ == "__main__":
    main()
