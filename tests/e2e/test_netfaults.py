"""Network faults below the application, on real processes: packet loss and a bandwidth cap in the kernel
(iptables statistic, tc tbf) and a partition that heals (iptables DROP), with nodes in network namespaces
(tests/netns.py); and a 100 ms delay from a user-space TCP relay (tests/relay.py: this kernel has no netem),
compared with the same delay emulated by the sending node ([links], gossip/net/linkemu.py)."""

from __future__ import annotations

import os
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from gossip.config import load_config
from gossip.results.rundir import read_jsonl
from gossip.run.deploy import prepare
from gossip.run.deploy.compose import compose_address_template
from gossip.run.tally import summarise
from gossip.topology import parse_spec
from tests.conftest import REPO, Processes
from tests.netns import Fabric, remove_stale

N = 4
RING_CUT = ((1, 2), (3, 0))  # cutting these two ring edges splits {0, 1} from {2, 3}


def _require_netns() -> None:
    if os.geteuid() != 0:
        pytest.fail("network namespaces need root (CI runs .ci/run as root)")
    for tool in ("ip", "iptables", "tc"):
        if shutil.which(tool) is None:
            pytest.fail(f"{tool} is missing: run `bash deploy/system-deps.sh`")


def _records(run_dir: Path, i: int) -> list[dict]:
    return read_jsonl(run_dir / "nodes" / f"node-{i}.jsonl")


def _wait_round(run_dir: Path, i: int, round_: int, procs: list[subprocess.Popen[bytes]]) -> None:
    """Until node i has written ``round_`` records; a hang is bounded by the test's pytest timeout."""
    while len(_records(run_dir, i)) < round_:
        assert all(p.poll() in (None, 0) for p in procs), "a node died"
        assert any(p.poll() is None for p in procs), f"every node ended before node {i} reached round {round_}"
        time.sleep(0.05)


def _start_in_fabric(
    net: Fabric, tmp_path: Path, processes: Processes, rounds: int, *sets: str, node_sets: tuple[str, ...] = ()
) -> tuple[Path, list[subprocess.Popen[bytes]]]:
    """The compose-rendered config, one `gossip node` per namespace (peers by name, node-<i>:7000); ``node_sets``
    are per-process overrides that stay out of the run id (transport keys)."""
    tmp_path.mkdir(parents=True, exist_ok=True)
    overrides = {
        "run.nodes": N,
        "topology.spec": "ring",
        "training.rounds": rounds,
        "data.dataset": "digits",
        "model.name": "logreg",
        "transport.startup_timeout_s": 60,
        "transport.round_timeout_s": 1.0,
        "training.checkpoint_every": 0,
    }
    overrides.update(dict(s.split("=", 1) for s in sets))
    run = prepare(load_config(env={}, overrides=overrides), compose_address_template())
    (tmp_path / "config.toml").write_text(run.config_toml)
    (tmp_path / "topology.json").write_text(run.topology_json)
    run_dir = tmp_path / "run"
    procs = []
    for i in range(N):
        args = [
            sys.executable,
            "-m",
            "gossip",
            "node",
            "--config",
            str(tmp_path / "config.toml"),
            "--id",
            str(i),
            "--run-dir",
            str(run_dir),
            "--set",
            f"topology.spec={tmp_path / 'topology.json'}",
            *(x for kv in node_sets for x in ("--set", kv)),
        ]
        with open(tmp_path / f"node-{i}.log", "wb") as log:
            procs.append(processes.start(net.command(i, args), stdout=log, stderr=subprocess.STDOUT, cwd=REPO))
    return run_dir, procs


@pytest.mark.slow
@pytest.mark.e2e
@pytest.mark.netns
def test_kernel_loss_and_bandwidth_cap_slow_rounds_but_training_converges(tmp_path: Path, processes: Processes) -> None:
    """Every namespace drops 10 % of its outgoing packets (iptables statistic) and caps eth0 at 8 Mbit/s (tc tbf).
    TCP retransmits what is lost, so models arrive late rather than never: every node finishes every round, the
    iptables rules really dropped packets, and the nodes still learn (accuracy well above chance) and agree (the
    spread of their final models is under 5 % of the model's norm); whatever missed its round is counted in the
    summary."""
    _require_netns()
    remove_stale()
    rounds = 25
    with Fabric(N) as net:
        for i in range(N):
            net.run(
                i,
                "iptables",
                "-A",
                "OUTPUT",
                "-o",
                net.host_iface,
                "-m",
                "statistic",
                "--mode",
                "random",
                "--probability",
                "0.1",
                "-j",
                "DROP",
            )
            net.run(i, "tc", "qdisc", "add", "dev", net.host_iface, "root", "tbf", "rate", "8mbit", "burst", "32kbit", "latency", "50ms")
        # a lost segment comes back after TCP's retransmission timeout (200 ms, doubling): 3 s lets three losses in a
        # row arrive within the round, so a model misses its round only on a rare burst, however loaded the machine
        run_dir, procs = _start_in_fabric(net, tmp_path, processes, rounds, "transport.round_timeout_s=3")
        for i, p in enumerate(procs):
            assert p.wait(timeout=240) == 0, (tmp_path / f"node-{i}.log").read_text()[-2000:]
        dropped = [int(net.run(i, "iptables", "-L", "OUTPUT", "-v", "-x", "-n").stdout.splitlines()[2].split()[0]) for i in range(N)]
    assert all(d > 0 for d in dropped), dropped
    records = {i: _records(run_dir, i) for i in range(N)}
    assert all([r["round"] for r in records[i]] == list(range(rounds)) for i in range(N))
    cfg = load_config(tmp_path / "config.toml", env={}, overrides={"topology.spec": str(tmp_path / "topology.json")})
    summary = summarise(run_dir, parse_spec(str(tmp_path / "topology.json")), cfg, 0.0).to_dict()
    assert summary["accuracy_mean"] > 0.5
    assert summary["missed_messages"] == sum(len(r["missing"]) for i in range(N) for r in records[i])
    norm = float(np.linalg.norm(np.load(run_dir / "nodes" / "node-0.npy", allow_pickle=False)))
    assert summary["consensus_distance_honest"] < 0.05 * norm, (summary["consensus_distance_honest"], norm)  # they agree
    print(
        f"packets dropped per node {dropped}; missed models {summary['missed_messages']}; accuracy {summary['accuracy_mean']:.3f}; "
        f"final spread {summary['consensus_distance_honest']:.4f} (model norm {norm:.2f}); "
        f"median round {statistics.median(r['round_s'] for i in range(N) for r in records[i]):.3f} s"
    )


@pytest.mark.slow
@pytest.mark.e2e
@pytest.mark.netns
def test_partition_for_several_rounds_then_heal_returns_to_the_pre_partition_consensus(tmp_path: Path, processes: Processes) -> None:
    """A ring of 4 in namespaces; from round 8 the edges 1-2 and 3-0 are cut with iptables DROP (both halves keep
    training), and healed a few rounds later. During the cut each node misses its neighbour across it (the
    summary counts the missed models); after the heal models cross again and the consensus distance comes back
    to its pre-partition level."""
    _require_netns()
    remove_stale()
    rounds, cut_at, heal_after_s = 40, 8, 5.0
    with Fabric(N) as net:
        # every node's step takes 0.2 s more: a round of this tiny model is otherwise a few ms, and on a fast or
        # loaded machine the run could pass round 30 before the iptables rules of the cut were even in place
        paced = ("faults.slow_nodes=[0, 1, 2, 3]", "faults.step_delay_s=0.2")
        run_dir, procs = _start_in_fabric(net, tmp_path, processes, rounds, "training.lr=0.05", *paced)

        def cut(action: str) -> None:
            for a, b in RING_CUT:
                for x, y in ((a, b), (b, a)):
                    net.run(x, "iptables", action, "INPUT", "-s", net.address(y), "-j", "DROP")
                    net.run(x, "iptables", action, "OUTPUT", "-d", net.address(y), "-j", "DROP")

        _wait_round(run_dir, 0, cut_at, procs)
        cut("-A")
        cut_round = len(_records(run_dir, 0))
        time.sleep(heal_after_s)
        cut("-D")
        healed_round = len(_records(run_dir, 0))
        for i, p in enumerate(procs):
            assert p.wait(timeout=240) == 0, (tmp_path / f"node-{i}.log").read_text()[-2000:]
    assert healed_round - cut_round >= 3, (cut_round, healed_round)
    records = {i: _records(run_dir, i) for i in range(N)}
    for a, b in RING_CUT:
        during = [r for r in records[a] if cut_round + 2 <= r["round"] < healed_round - 1]
        assert during and all(b in r["missing"] for r in during), during
        assert any(b not in r["missing"] for r in records[a][-5:])  # healed: models cross again
    cfg = load_config(tmp_path / "config.toml", env={}, overrides={"topology.spec": str(tmp_path / "topology.json")})
    summary = summarise(run_dir, parse_spec(str(tmp_path / "topology.json")), cfg, 0.0).to_dict()
    assert summary["missed_messages"] >= 2 * 2 * 2  # two cut edges, both directions, at least two rounds
    before = [statistics.median(r["consensus_distance"] for r in records[i][cut_at - 4 : cut_at]) for i in range(N)]
    after = [statistics.median(r["consensus_distance"] for r in records[i][-4:]) for i in range(N)]
    assert all(a <= 1.5 * b for a, b in zip(after, before, strict=True)), (before, after)
    assert summary["accuracy_mean"] > 0.5
    print(
        f"cut in rounds {cut_round}..{healed_round}; missed models {summary['missed_messages']}; "
        f"consensus distance before {[round(x, 4) for x in before]}, at the end {[round(x, 4) for x in after]}"
    )


@pytest.mark.slow
@pytest.mark.e2e
@pytest.mark.netns
def test_relay_delay_and_emulated_delay_lengthen_rounds_alike(tmp_path: Path, processes: Processes) -> None:
    """The same 4-node ring in namespaces, twice: once behind a delaying TCP relay in each namespace (100 ± 10 ms
    on what each node receives, the stand-in for netem: node-<i>:7001 relays to its node on 127.0.0.1:7000), once
    with [links] delay_ms = 100, jitter_ms = 10 emulated by the senders. Both rounds take at least the 100 ms on
    average, their mean round times agree within a factor of 1.5, and no model misses its round in either."""
    _require_netns()
    remove_stale()
    rounds = 12
    with Fabric(N) as net:
        relays = [
            processes.start(
                net.command(
                    i,
                    [
                        sys.executable,
                        "-m",
                        "tests.relay",
                        "--delay-ms",
                        "100",
                        "--jitter-ms",
                        "10",
                        "--seed",
                        str(i),
                        "0.0.0.0:7001=127.0.0.1:7000",
                    ],
                ),
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
                cwd=REPO,
            )
            for i in range(N)
        ]
        for r in relays:
            assert r.stdout is not None and r.stdout.readline().strip() == b"relay ready"
        relayed_dir, procs = _start_in_fabric(
            net,
            tmp_path / "relay",
            processes,
            rounds,
            "transport.round_timeout_s=5",
            node_sets=("transport.address_template=tcp://node-{id}:7001",),
        )
        for i, p in enumerate(procs):
            assert p.wait(timeout=180) == 0, (tmp_path / "relay" / f"node-{i}.log").read_text()[-2000:]
        for r in relays:
            r.kill()
            r.wait()
            assert r.stdout is not None
            r.stdout.close()
        emulated_dir, procs = _start_in_fabric(
            net, tmp_path / "emulated", processes, rounds, "transport.round_timeout_s=5", "links.delay_ms=100", "links.jitter_ms=10"
        )
        for i, p in enumerate(procs):
            assert p.wait(timeout=180) == 0, (tmp_path / "emulated" / f"node-{i}.log").read_text()[-2000:]
    relayed = [r for i in range(N) for r in _records(relayed_dir, i)]
    emulated = [r for i in range(N) for r in _records(emulated_dir, i)]
    # means, without the first round (start-up) and the last (nodes leave): in lock-step rounds a node may alternate
    # between a round that waits two delays and one that waits none, so the median can mislead
    relay_s = statistics.mean(r["round_s"] for r in relayed if 0 < r["round"] < rounds - 1)
    emulated_s = statistics.mean(r["round_s"] for r in emulated if 0 < r["round"] < rounds - 1)
    assert relay_s >= 0.1 and emulated_s >= 0.1, (relay_s, emulated_s)
    assert 1 / 1.5 <= relay_s / emulated_s <= 1.5, (relay_s, emulated_s)
    missed = [
        (run, r["node"], r["round"], r["missing"]) for run, rs in (("relay", relayed), ("emulated", emulated)) for r in rs if r["missing"]
    ]
    assert not missed, missed
    print(f"mean round: relay 100±10 ms {relay_s:.3f} s, emulated 100±10 ms {emulated_s:.3f} s")
