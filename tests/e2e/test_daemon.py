"""``gossip node`` as a daemon, through real processes on loopback: deadlines, SIGTERM, checkpoints, --hold."""

from __future__ import annotations

import json
import re
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest
import torch

from gossip.errors import ExitCode
from gossip.learn.flat import model_hash
from gossip.node import checkpoint
from gossip.results.rundir import read_jsonl
from tests.conftest import Processes, free_port, run_gossip

pytestmark = [pytest.mark.slow, pytest.mark.e2e]


def _node_args(n: int, ports: list[int], metrics: list[int], *extra: str) -> list[str]:
    addresses = ", ".join(f'"tcp://127.0.0.1:{p}"' for p in ports)
    return [
        "--set",
        f"run.nodes={n}",
        "--set",
        "topology.spec=ring",
        "--set",
        f"transport.addresses=[{addresses}]",
        "--set",
        f"metrics.ports=[{', '.join(map(str, metrics))}]",
        *extra,
    ]


def test_missing_neighbours_are_named_with_their_addresses_after_the_deadline(tmp_path: Path) -> None:
    """A node whose neighbours never start gives up after startup_timeout_s with one line naming each missing
    neighbour and the address it tried, and exit code 1: a runtime failure, not a usage error (2), so a restart
    policy (an orchestrator's, or the launcher's --restart) tries again once the neighbours may be up."""
    ports = [free_port() for _ in range(3)]
    r = run_gossip(
        "node", "--id", "0", *_node_args(3, ports, [free_port() for _ in range(3)], "--set", "transport.startup_timeout_s=2"), timeout=120
    )
    assert r.returncode == ExitCode.FAILED, r.stderr
    error = [line for line in r.stderr.splitlines() if line.startswith("gossip: error:")]
    assert len(error) == 1, r.stderr
    assert f"neighbour(s) 1 (tcp://127.0.0.1:{ports[1]}), 2 (tcp://127.0.0.1:{ports[2]}) within 2 s" in error[0]
    assert "Traceback" not in r.stderr


def test_sigterm_mid_run_exits_143_with_a_checkpoint_of_the_last_round(tmp_path: Path, processes: Processes) -> None:
    """SIGTERM during training: every node leaves at the end of its current round with exit 143 (stopped by
    SIGTERM before its last round: not 0, which says it finished), status 'stopped', and a checkpoint whose round
    and vector match its records and its summary's model hash."""
    n = 3
    ports, metrics = [free_port() for _ in range(n)], [free_port() for _ in range(n)]
    logs = [tmp_path / f"node-{i}.log" for i in range(n)]
    procs = []
    for i in range(n):
        with open(logs[i], "wb") as log:  # a file, not a pipe: a full pipe would stall the node
            args = _node_args(n, ports, metrics, "--set", "training.rounds=100000")
            procs.append(processes.gossip("node", "--id", str(i), "--run-dir", str(tmp_path), *args, stdout=subprocess.DEVNULL, stderr=log))
    deadline = time.monotonic() + 180
    while time.monotonic() < deadline and not all(len(read_jsonl(tmp_path / "nodes" / f"node-{i}.jsonl")) >= 3 for i in range(n)):
        assert all(p.poll() is None for p in procs)
        time.sleep(0.2)
    for p in procs:
        p.send_signal(signal.SIGTERM)
    for i, p in enumerate(procs):
        assert p.wait(timeout=90) == ExitCode.TERMINATED, logs[i].read_text()[-2000:]
        summary = json.loads((tmp_path / "nodes" / f"node-{i}.json").read_text())
        records = read_jsonl(tmp_path / "nodes" / f"node-{i}.jsonl")
        saved = checkpoint.load(tmp_path / "nodes" / f"node-{i}.ckpt.npz")
        assert summary["status"] == "stopped"
        assert saved.round == summary["rounds_completed"] == len(records) >= 3
        assert model_hash(torch.from_numpy(saved.vector)) == summary["model_hash"]
        # the log: the first round, at most one a second (run.log_interval_s), and the last one the node finished
        logged = [int(r) for r in re.findall(rf"gossip\.node node={i} round=(\d+) ", logs[i].read_text())]
        assert logged[0] == 0 and logged[-1] == len(records) - 1, logged
        assert logged == sorted(set(logged)), logged


def test_hold_keeps_the_final_metrics_up_then_exits_0(tmp_path: Path, processes: Processes) -> None:
    """With --hold 4 a finished node still answers /metrics (with its final round count) and /readyz, then
    exits 0 by itself; SIGTERM during the hold ends it at once with exit 0."""
    n, rounds = 3, 3
    ports, metrics = [free_port() for _ in range(n)], [free_port() for _ in range(n)]
    holds = ["4", "4", "forever"]
    logs = [tmp_path / f"node-{i}.log" for i in range(n)]
    procs = []
    for i in range(n):
        with open(logs[i], "wb") as log:
            args = _node_args(n, ports, metrics, "--set", f"training.rounds={rounds}")
            procs.append(processes.gossip("node", "--id", str(i), *args, "--hold", holds[i], stdout=subprocess.DEVNULL, stderr=log))
    # Node 0 finishes, then holds: its endpoint must still serve the final value.
    deadline = time.monotonic() + 180
    body = ""
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{metrics[0]}/metrics", timeout=2) as r:
                body = r.read().decode()
        except OSError:
            body = ""
        if f'gossip_rounds_total{{node="0"}} {rounds}.0' in body:
            break
        time.sleep(0.2)
    assert f'gossip_rounds_total{{node="0"}} {rounds}.0' in body
    with urllib.request.urlopen(f"http://127.0.0.1:{metrics[0]}/readyz", timeout=2) as r:
        assert r.status == 200
    assert procs[0].wait(timeout=60) == 0 and procs[1].wait(timeout=60) == 0
    assert procs[2].poll() is None  # 'forever' waits for a signal
    procs[2].send_signal(signal.SIGTERM)
    assert procs[2].wait(timeout=30) == 0
    assert "holding /metrics until SIGTERM" in logs[2].read_text()


def test_bad_hold_value_is_a_usage_error() -> None:
    """--hold takes seconds or 'forever'; anything else is one line and exit 2."""
    r = run_gossip("node", "--id", "0", "--hold", "soon", timeout=60)
    assert r.returncode == 2 and "soon" in r.stderr and len(r.stderr.strip().splitlines()) == 1


def test_a_node_process_leaves_without_the_interpreters_teardown_once_its_files_and_lines_are_out(
    tmp_path: Path, processes: Processes
) -> None:
    """`gossip node` as a process's own command ends with os._exit once it is done (a torch process spends
    seconds of CPU taking its modules apart otherwise): an atexit hook never runs, yet every file and its
    last stderr line are there. Called in-process with explicit arguments (node 0 here), main returns as usual."""
    n = 3
    ports, metrics = [free_port() for _ in range(n)], [free_port() for _ in range(n)]
    procs, logs = [], []
    for i in range(n):
        marker = tmp_path / f"torn-down-{i}"
        call = "main(sys.argv[1:])" if i == 0 else "main()"
        code = f"import atexit, pathlib, sys; atexit.register(pathlib.Path({str(marker)!r}).write_text, 'x'); from gossip.cli import main; raise SystemExit({call})"
        logs.append(tmp_path / f"node-{i}.log")
        with open(logs[i], "wb") as log:
            args = ["node", "--id", str(i), "--run-dir", str(tmp_path), *_node_args(n, ports, metrics, "--set", "training.rounds=3")]
            procs.append(processes.start([sys.executable, "-c", code, *args], stdout=subprocess.DEVNULL, stderr=log))
    for i, p in enumerate(procs):
        assert p.wait(timeout=180) == 0, logs[i].read_text()[-2000:]
        assert json.loads((tmp_path / "nodes" / f"node-{i}.json").read_text())["status"] == "finished"
        assert f"node {i} finished after 3 rounds" in logs[i].read_text().splitlines()[-1]
    assert [(tmp_path / f"torn-down-{i}").exists() for i in range(n)] == [True, False, False]
