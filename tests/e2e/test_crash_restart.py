"""Crash and restart on real processes: SIGKILL a quarter of the nodes mid-run, restart them from their
checkpoints, and check they rejoin at the current round and end in the global merge with everyone."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from gossip.config import load_config
from gossip.node import checkpoint
from gossip.results.rundir import read_jsonl
from gossip.run.prepare import prepare_run
from gossip.run.tally import summarise
from tests.conftest import Processes

pytestmark = [pytest.mark.slow, pytest.mark.e2e]

N = 8
ROUNDS = 110  # paced at 0.2 s a round: 20 s of rounds left after the kill for two fresh interpreters to start and rejoin (~8 s loaded)
KILLED = (2, 5)  # not adjacent on the ring: each has two live neighbours that notice
TIMEOUT_S = 1.0


def _node_cmd(run_dir: Path, i: int, *extra: str) -> list[str]:
    return [
        sys.executable,
        "-m",
        "gossip",
        "node",
        "--config",
        str(run_dir / "config.toml"),
        "--id",
        str(i),
        "--run-dir",
        str(run_dir),
        *extra,
    ]


def _rounds_done(run_dir: Path, i: int) -> int:
    return len(read_jsonl(run_dir / "nodes" / f"node-{i}.jsonl"))


def test_killed_nodes_restart_from_checkpoints_rejoin_at_the_current_round_and_merge_with_all(tmp_path: Path, processes: Processes) -> None:
    """8 nodes on a ring; nodes 2 and 5 get SIGKILL after round 8. Their neighbours go on after the round
    timeout and report them down (log line, missing in the records, peers_were_down in the summary). Restarted
    with `gossip node --resume`, each loads its last periodic checkpoint, learns the neighbours' round from their
    welcomes and skips ahead instead of replaying; every node finishes, and the global merge averages all 8
    models into one identical model."""
    cfg = load_config(
        env={},
        overrides={
            "run.nodes": N,
            "topology.spec": "ring",
            "training.rounds": ROUNDS,
            "data.dataset": "digits",
            "model.name": "logreg",
            "training.local_steps": 2,
            "training.checkpoint_every": 4,
            "training.checkpoint_interval_s": 0,
            "transport.round_timeout_s": TIMEOUT_S,
            "merge.enabled": True,
            "merge.timeout_s": 30.0,
            # every step 0.1 s longer: a dead neighbour costs a few rounds, not a timeout each, and the tiny model's
            # rounds would otherwise end the run before the restarted processes have imported torch
            "faults.slow_nodes": list(range(N)),
            "faults.step_delay_s": 0.1,
        },
    )
    _resolved, run_dir, topology = prepare_run(cfg, run_dir=tmp_path / "run")
    logs = tmp_path / "logs"
    logs.mkdir()

    def start(i: int, tag: str, *extra: str) -> subprocess.Popen[bytes]:
        with open(logs / f"node-{i}.{tag}.log", "wb") as log:
            return processes.start(_node_cmd(run_dir, i, *extra), stdout=log, stderr=subprocess.STDOUT)

    procs = {i: start(i, "first") for i in range(N)}

    def tail(i: int) -> str:
        return "\n".join(f"--- {p.name}\n{p.read_text()[-2000:]}" for p in sorted(logs.glob(f"node-{i}.*.log")))

    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and min(_rounds_done(run_dir, i) for i in KILLED) < 9:
        assert all(p.poll() is None for p in procs.values()), tail(0)
        time.sleep(0.02)
    for i in KILLED:
        procs[i].send_signal(signal.SIGKILL)
    killed_at = {i: _rounds_done(run_dir, i) for i in KILLED}
    saved_round = {}
    for i in KILLED:
        assert procs[i].wait(timeout=30) == -signal.SIGKILL
        saved_round[i] = checkpoint.load(run_dir / "nodes" / f"node-{i}.ckpt.npz").round
        assert saved_round[i] % 4 == 0 and 0 < saved_round[i] <= killed_at[i]

    # the neighbours carry on without them: one round timeout, then short waits, then none
    neighbour_start = _rounds_done(run_dir, 3)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and _rounds_done(run_dir, 3) < neighbour_start + 4:
        time.sleep(0.1)
    assert _rounds_done(run_dir, 3) >= neighbour_start + 4, tail(3)

    for i in KILLED:
        procs[i] = start(i, "restarted", "--resume")
    for i, p in procs.items():
        assert p.wait(timeout=180) == 0, tail(i)

    # the restarted nodes resumed from their checkpoint and skipped ahead to their neighbours' round
    for i in KILLED:
        records = read_jsonl(run_dir / "nodes" / f"node-{i}.jsonl")
        resumed = [r for r in records if "resumed" in r]
        assert len(resumed) == 1, records
        info = resumed[0]["resumed"]
        assert info["checkpoint_round"] == saved_round[i]
        joined = info["joined_round"]
        assert joined >= saved_round[i] + 2, info  # rejoined at the current round: no replay
        assert [r["round"] for r in records] == list(range(saved_round[i])) + list(range(joined, ROUNDS))
        summary = json.loads((run_dir / "nodes" / f"node-{i}.json").read_text())
        assert summary["status"] == "finished" and summary["resumed"] == info
        assert "skipping to round" in (logs / f"node-{i}.restarted.log").read_text()

    # the dead were noticed by their neighbours
    for dead in KILLED:
        for j in ((dead - 1) % N, (dead + 1) % N):
            records = read_jsonl(run_dir / "nodes" / f"node-{j}.jsonl")
            assert sum(dead in r["missing"] for r in records) >= 3
            assert dead in json.loads((run_dir / "nodes" / f"node-{j}.json").read_text())["peers_were_down"]
            log = (logs / f"node-{j}.first.log").read_text()
            assert f"neighbour {dead} missed 3 rounds in a row" in log and f"neighbour {dead} is back" in log

    summary = summarise(run_dir, topology, cfg, 0.0).to_dict()
    assert summary["dead_nodes"] == []
    assert summary["merge_agreed"] is True
    assert summary["merge_members"] == list(range(N))
    assert len({n["model_hash"] for n in summary["per_node"]}) == 1
    missed = {
        dead: [
            sum(dead in r["missing"] for r in read_jsonl(run_dir / "nodes" / f"node-{j}.jsonl")) for j in ((dead - 1) % N, (dead + 1) % N)
        ]
        for dead in KILLED
    }
    joined = {i: json.loads((run_dir / "nodes" / f"node-{i}.json").read_text())["resumed"]["joined_round"] for i in KILLED}
    print(
        f"checkpoints {saved_round}, killed after {killed_at} records, rejoined at {joined}; rounds their neighbours missed them: {missed}"
    )
