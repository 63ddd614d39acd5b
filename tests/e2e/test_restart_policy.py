"""`gossip launch --restart`: the launcher restarts a node killed mid-run from its checkpoint, like a restart policy."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from pathlib import Path

import pytest

from gossip.results.rundir import read_jsonl
from tests.conftest import Processes
from tests.procs import node_pids

pytestmark = [pytest.mark.slow, pytest.mark.e2e]

N = 6
ROUNDS = 100  # paced at 0.1 s a round: 9 s of rounds are left to rejoin (the fork server's restart took under a round, loaded)
VICTIM = 3
PACED = ("faults.slow_nodes=[0, 1, 2, 3, 4, 5]", "faults.step_delay_s=0.1")  # a dead neighbour no longer slows the rounds


def test_launcher_restarts_a_killed_node_which_rejoins_and_merges(tmp_path: Path, processes: Processes) -> None:
    """6 nodes, `gossip launch --restart`; node 3 gets SIGKILL after round 8. The launcher says it restarts it, the
    node resumes from its checkpoint, and the run ends with exit 0: no dead node, one restart in the summary, and
    the global merge over all 6 models with one hash."""
    run_dir = tmp_path / "run"
    log = tmp_path / "launch.log"
    with open(log, "wb") as fh:
        launcher = processes.gossip(
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
            "--run-dir",
            str(run_dir),
            "--no-progress",
            "--no-report",
            "--restart",
            "--set",
            "transport.round_timeout_s=1",
            "--set",
            "training.checkpoint_every=4",
            "--set",
            "training.checkpoint_interval_s=0",
            "--set",
            "merge.enabled=true",
            *(x for p in PACED for x in ("--set", p)),
            stdout=fh,
            stderr=subprocess.STDOUT,
        )
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and len(read_jsonl(run_dir / "nodes" / f"node-{VICTIM}.jsonl")) < 9:
        assert launcher.poll() is None, log.read_text()
        time.sleep(0.02)
    pid = node_pids(run_dir).get(VICTIM)
    assert pid is not None, log.read_text()
    os.kill(pid, signal.SIGKILL)
    assert launcher.wait(timeout=240) == 0, log.read_text()[-3000:]
    text = log.read_text()
    assert f"node {VICTIM} died (killed by SIGKILL); restarting it from its checkpoint (1 of 3)" in text
    summary = json.loads((run_dir / "summary.json").read_text())
    assert summary["dead_nodes"] == [] and summary["restarts"] == {str(VICTIM): 1}
    assert summary["merge_agreed"] is True and summary["merge_members"] == list(range(N))
    records = read_jsonl(run_dir / "nodes" / f"node-{VICTIM}.jsonl")
    assert sum("resumed" in r for r in records) == 1 and records[-1]["round"] == ROUNDS - 1
