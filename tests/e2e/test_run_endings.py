"""How a run ends, through real processes: exit codes and summaries tell what happened (gossip.errors.ExitCode).

A diverging run stops at once; a runtime failure is restartable, never a usage error; a dead fork server, a node
stopped from outside and a restarted node are each reported as what they were.
"""

from __future__ import annotations

import json
import os
import re
import resource
import signal
import subprocess
import time
from pathlib import Path

import pytest

from gossip.errors import ExitCode
from gossip.results.rundir import read_jsonl
from tests.conftest import Processes
from tests.procs import node_pids
from tests.waiting import wait_until

pytestmark = [pytest.mark.slow, pytest.mark.e2e]

TINY = ("--dataset", "digits", "--model", "logreg", "--no-progress", "--no-report")
PACED = ("--set", "faults.slow_nodes=[0, 1, 2, 3]", "--set", "faults.step_delay_s=0.05")  # ~0.05 s a round: kills land mid-run


def _launch(processes: Processes, run_dir: Path, log: Path, *args: str) -> subprocess.Popen[bytes]:
    with open(log, "wb") as fh:  # a file, not a pipe: nobody reads while the run goes on
        return processes.gossip("launch", "--run-dir", str(run_dir), *args, stdout=fh, stderr=subprocess.STDOUT)


def _wait_for_rounds(
    run_dir: Path, launcher: subprocess.Popen[bytes], log: Path, nodes: range, rounds: int, timeout_s: float = 120
) -> None:
    def alive() -> None:
        assert launcher.poll() is None, log.read_text()[-3000:]

    wait_until(
        lambda: all(len(read_jsonl(run_dir / "nodes" / f"node-{i}.jsonl")) >= rounds for i in nodes),
        timeout_s=timeout_s,
        what=f"nodes {list(nodes)} reaching round {rounds} (launcher log: {log})",
        still=alive,
        every_s=0.02,
    )


def _node_summary(run_dir: Path, i: int) -> dict[str, object]:
    return json.loads((run_dir / "nodes" / f"node-{i}.json").read_text())


def test_a_diverging_run_stops_promptly_naming_the_node_and_its_round(tmp_path: Path, processes: Processes) -> None:
    """`gossip launch -n 4 -r 20 --lr 1e6` (default 30 s round timeout): the models turn non-finite within a round
    or two; a node that sees its own model non-finite logs `node i diverged at round t (loss ...)`, writes status
    'diverged' and exits 3, and the launcher stops the run with `gossip: error: node i diverged at round t` and exit
    3. Bound 150 s (a few seconds here, loaded: tens): every round waiting out the timeout would take 10 minutes."""
    run_dir, log = tmp_path / "run", tmp_path / "launch.log"
    started = time.monotonic()
    launcher = _launch(processes, run_dir, log, "-n", "4", "-r", "20", "--lr", "1e6", "--no-progress", "--no-report")
    try:
        code = launcher.wait(timeout=150)
    except subprocess.TimeoutExpired:
        pytest.fail(f"still running after {time.monotonic() - started:.0f} s:\n{log.read_text()[-3000:]}")
    text = log.read_text()
    assert code == ExitCode.DIVERGED, text[-3000:]
    match = re.search(r"gossip: error: node (\d) diverged at round (\d+)", text)
    assert match, text[-3000:]
    node, round_ = int(match.group(1)), int(match.group(2))
    own = _node_summary(run_dir, node)
    assert own["status"] == "diverged" and own["diverged"]["round"] == round_  # type: ignore[index]
    assert re.search(rf"node {node} diverged at round {round_} \(loss \S+\)", (run_dir / "nodes" / f"node-{node}.log").read_text())
    summary = json.loads((run_dir / "summary.json").read_text())
    assert summary["per_node"][node]["status"] == "diverged"
    assert node_pids(run_dir) == {}


def test_an_os_error_while_a_node_runs_is_a_restartable_failure_not_a_usage_error(tmp_path: Path, processes: Processes) -> None:
    """A node whose file descriptors run out mid-run (its RLIMIT_NOFILE lowered to the descriptors it holds, as an
    attacker exhausting them would) fails writing its next checkpoint with EMFILE: one line, exit 1 (a runtime
    failure), not 2 (a usage error). So `--restart` starts it again from its checkpoint and the run finishes, exit 0."""
    run_dir, log = tmp_path / "run", tmp_path / "launch.log"
    launcher = _launch(
        processes,
        run_dir,
        log,
        "-n",
        "4",
        "-t",
        "ring",
        "-r",
        "120",
        *TINY,
        *PACED,
        "--restart",
        "--set",
        "training.checkpoint_every=3",
        "--set",
        "training.checkpoint_interval_s=0",
        "--set",
        "transport.round_timeout_s=1",
    )
    _wait_for_rounds(run_dir, launcher, log, range(4), 4)
    pid = node_pids(run_dir)[2]
    held = {int(fd) for fd in os.listdir(f"/proc/{pid}/fd")}
    lowest_free = min(set(range(len(held) + 1)) - held)
    resource.prlimit(pid, resource.RLIMIT_NOFILE, (lowest_free, resource.prlimit(pid, resource.RLIMIT_NOFILE)[1]))  # no new descriptor
    assert launcher.wait(timeout=240) == 0, log.read_text()[-3000:]
    text = log.read_text()
    assert "node 2 died (exit code 1: a runtime failure); restarting it from its checkpoint (1 of 3)" in text, text[-3000:]
    node_log = (run_dir / "nodes" / "node-2.log").read_text()
    assert re.search(r"gossip: error: .*Too many open files", node_log), node_log[-3000:]
    summary = json.loads((run_dir / "summary.json").read_text())
    assert summary["restarts"] == {"2": 1} and all(n["status"] == "finished" for n in summary["per_node"])


def _parent_of(pid: int) -> int:
    return int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[1])


def test_killing_the_fork_server_reports_what_became_of_each_node(tmp_path: Path, processes: Processes) -> None:
    """SIGKILL of the fork server mid-run: its nodes get SIGTERM from the kernel, checkpoint and stop. The launcher
    says so — the fork server was killed, each node stopped at its round — instead of a made-up exit code 255
    (multiprocessing's stand-in for a status the dead server can no longer pass on); exit 1, no node left behind."""
    run_dir, log = tmp_path / "run", tmp_path / "launch.log"
    launcher = _launch(processes, run_dir, log, "-n", "4", "-t", "ring", "-r", "100000", *TINY)
    _wait_for_rounds(run_dir, launcher, log, range(4), 2)
    servers = {_parent_of(pid) for pid in node_pids(run_dir).values()}
    assert len(servers) == 1
    os.kill(servers.pop(), signal.SIGKILL)
    assert launcher.wait(timeout=120) == ExitCode.FAILED, log.read_text()[-3000:]
    text = log.read_text()
    assert "code 255" not in text, text[-3000:]  # not "255" alone: a port number may hold it
    assert "gossip: error: the fork server was killed by SIGKILL mid-run" in text, text[-3000:]
    for i in range(4):
        stopped_at = _node_summary(run_dir, i)["rounds_completed"]
        assert f"node {i} stopped at round {stopped_at}" in text, text[-3000:]
    assert node_pids(run_dir) == {}


def test_sigterm_to_one_node_fails_the_run_and_is_not_restarted(tmp_path: Path, processes: Processes) -> None:
    """SIGTERM to node 1 (not from the launcher), with `--restart`: the node ends its round, writes status 'stopped'
    and exits 143; a stop someone asked for is not undone by a restart, and the run did not finish, so the launcher
    stops it with `node 1 was stopped by SIGTERM` and exit 1 — not 0."""
    run_dir, log = tmp_path / "run", tmp_path / "launch.log"
    launcher = _launch(processes, run_dir, log, "-n", "4", "-t", "ring", "-r", "300", *TINY, *PACED, "--restart")
    _wait_for_rounds(run_dir, launcher, log, range(4), 3)
    os.kill(node_pids(run_dir)[1], signal.SIGTERM)
    assert launcher.wait(timeout=120) == ExitCode.FAILED, log.read_text()[-3000:]
    text = log.read_text()
    assert re.search(r"gossip: error: node 1 was stopped by SIGTERM at round \d+ of 300", text), text[-3000:]
    assert "restarting" not in text, text[-3000:]
    assert _node_summary(run_dir, 1)["status"] == "stopped"
    assert json.loads((run_dir / "summary.json").read_text())["per_node"][1]["status"] == "stopped"


def test_rounds_completed_agree_between_node_and_run_summaries_after_a_restart(tmp_path: Path, processes: Processes) -> None:
    """`--restart`; node 2 gets SIGKILL three rounds past a checkpoint, so its neighbours are 2+ rounds ahead when it
    comes back and it skips to their round. Its own summary and summary.json give the same rounds_completed — the
    rounds it ran, one record each — and rounds_skipped says how many it skipped: together the run's rounds."""
    rounds, every = 60, 6
    run_dir, log = tmp_path / "run", tmp_path / "launch.log"
    launcher = _launch(
        processes,
        run_dir,
        log,
        "-n",
        "4",
        "-t",
        "ring",
        "-r",
        str(rounds),
        *TINY,
        *PACED,
        "--restart",
        "--set",
        f"training.checkpoint_every={every}",
        "--set",
        "training.checkpoint_interval_s=0",
        "--set",
        "transport.round_timeout_s=1",
    )
    records = run_dir / "nodes" / "node-2.jsonl"

    def three_past_a_checkpoint() -> bool:
        done = len(read_jsonl(records))
        return done >= every and done % every == 3

    def alive() -> None:
        assert launcher.poll() is None, log.read_text()[-3000:]

    wait_until(three_past_a_checkpoint, timeout_s=120, what="node 2 three rounds past a checkpoint", still=alive, every_s=0.005)
    os.kill(node_pids(run_dir)[2], signal.SIGKILL)
    assert launcher.wait(timeout=240) == 0, log.read_text()[-3000:]
    summary = json.loads((run_dir / "summary.json").read_text())
    assert summary["restarts"] == {"2": 1}
    own = [_node_summary(run_dir, i) for i in range(4)]
    ran = [len(read_jsonl(run_dir / "nodes" / f"node-{i}.jsonl")) for i in range(4)]
    assert [o["rounds_completed"] for o in own] == [n["rounds_completed"] for n in summary["per_node"]] == ran
    assert [o["rounds_skipped"] for o in own] == [n["rounds_skipped"] for n in summary["per_node"]]
    assert all(o["rounds_completed"] + o["rounds_skipped"] == rounds for o in own)  # type: ignore[operator]
    assert own[2]["rounds_skipped"] >= 2 and own[2]["status"] == "finished"
