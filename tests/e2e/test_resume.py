"""Whole-run resume: kill ``gossip launch`` at seeded random moments, ``gossip launch --resume`` each time, and
check the run ends as if it had never stopped: whole JSONL lines, contiguous rounds, loadable checkpoints."""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from gossip.node import checkpoint
from gossip.results.rundir import read_jsonl
from tests.conftest import Processes, run_gossip
from tests.procs import node_pids

pytestmark = [pytest.mark.slow, pytest.mark.e2e]

N = 4
KILLS = 2
ROUNDS = 300  # two kills at most 120 rounds apart land mid-training


def _wait_gone(pids: list[int], timeout_s: float = 30) -> None:
    deadline = time.monotonic() + timeout_s
    for pid in pids:
        while time.monotonic() < deadline:
            try:
                os.kill(pid, 0)
            except ProcessLookupError:
                break
            time.sleep(0.05)


def test_launcher_killed_at_random_moments_resumes_to_a_clean_complete_run(tmp_path: Path, processes: Processes) -> None:
    """Seeded random kills of the launcher while its 4 nodes train (first SIGKILL of the launcher alone: its nodes
    get SIGTERM from the kernel and checkpoint their round; then SIGKILL of the launcher and every node at once,
    which can tear a JSONL line and leaves checkpoints up to a round old), each followed by
    `gossip launch --resume RUN_DIR`. The
    last resume runs to the end: exit 0, every line of every JSONL parses, each node's rounds are exactly
    0..R-1 with no duplicate, every checkpoint loads at round R, and the summary has no dead node."""
    rng = random.Random(8)
    run_dir = tmp_path / "run"
    first = [
        "launch",
        "-n",
        str(N),
        "-t",
        "ring",
        "-r",
        str(ROUNDS),
        "--dataset",
        "digits",
        "--model",
        "logreg",
        "--local-steps",
        "2",
        "--set",
        "training.checkpoint_every=1",
        "--set",
        "training.checkpoint_interval_s=0",
        "--set",
        "transport.round_timeout_s=3",
        "--run-dir",
        str(run_dir),
        "--no-progress",
        "--no-report",
    ]
    resume = ["launch", "--resume", str(run_dir), "--no-progress", "--no-report"]
    kills = []
    for attempt in range(KILLS):
        log = tmp_path / f"launch-{attempt}.log"
        with open(log, "wb") as fh:
            launcher = processes.gossip(*(first if attempt == 0 else resume), stdout=fh, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 60
        # a seeded random moment, counted in rounds (seconds would depend on the machine's load): 5-120 rounds
        # after the previous kill, plus a random fraction of a round
        target = (min(kills[-1]) if kills else 0) + rng.randint(5, 120)
        while time.monotonic() < deadline and min(len(read_jsonl(run_dir / "nodes" / f"node-{i}.jsonl")) for i in range(N)) < target:
            assert launcher.poll() is None, log.read_text()
            time.sleep(0.01)
        time.sleep(rng.uniform(0.0, 0.03))
        assert launcher.poll() is None, f"the run ended before kill {attempt}: raise ROUNDS\n{log.read_text()}"
        nodes = list(node_pids(run_dir).values())
        assert len(nodes) == N, log.read_text()
        launcher.send_signal(signal.SIGKILL)
        if attempt == KILLS - 1:
            for pid in nodes:
                os.kill(pid, signal.SIGKILL)
        launcher.wait()
        _wait_gone(nodes)
        kills.append([len(read_jsonl(run_dir / "nodes" / f"node-{i}.jsonl")) for i in range(N)])
        assert min(kills[-1]) < ROUNDS
    assert kills[0] != kills[-1], kills  # training progressed between kills

    final = run_gossip(*resume, timeout=300)
    assert final.returncode == 0, final.stderr[-3000:]
    assert "gossip: resuming" in final.stderr

    for i in range(N):
        raw = (run_dir / "nodes" / f"node-{i}.jsonl").read_bytes()
        assert raw.endswith(b"\n")
        lines = raw.split(b"\n")[:-1]
        records = [json.loads(line) for line in lines]  # every line parses: nothing torn, nothing interleaved
        assert [r["round"] for r in records] == list(range(ROUNDS)), (i, kills)
        assert checkpoint.load(run_dir / "nodes" / f"node-{i}.ckpt.npz").round == ROUNDS
        assert json.loads((run_dir / "nodes" / f"node-{i}.json").read_text())["status"] == "finished"
    summary = json.loads((run_dir / "summary.json").read_text())
    assert summary["dead_nodes"] == [] and all(n["rounds_completed"] == ROUNDS for n in summary["per_node"])
    assert summary["accuracy_mean"] > 0.5
    print(f"records at each kill: {kills}", file=sys.stderr)
