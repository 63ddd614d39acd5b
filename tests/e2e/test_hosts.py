"""``gossip launch --hosts``: a run across two "hosts", each a network namespace with its own sshd.

The launcher runs in a third namespace (the login machine) and reaches the two hosts only by ssh to their
10.77.0.x addresses; the nodes reach each other only over the fabric's bridge. The run directory is on this
machine's file system, which every namespace shares, as an NFS mount would be shared by real hosts.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import time
import tomllib
from collections.abc import Iterator
from pathlib import Path

import pytest

from gossip.results.rundir import read_jsonl
from tests.conftest import REPO
from tests.netns import Fabric, remove_stale
from tests.procs import command_of
from tests.sshd import SshHosts, available

pytestmark = [pytest.mark.slow, pytest.mark.e2e, pytest.mark.netns]

HOSTS = 2  # two nodes on each: two nodes of a run share a host, and the run spans hosts
LAUNCHER = HOSTS  # the namespace the launcher runs in: no node, no sshd
NODES = 4


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SshHosts]:
    """Two hosts with sshd and a third to launch from; all stopped and deleted afterwards, even on failure."""
    if os.geteuid() != 0:
        pytest.fail("network namespaces need root (CI runs .ci/run as root)")
    missing = available()
    if missing:
        pytest.fail(missing)
    remove_stale()
    with Fabric(HOSTS + 1) as net, SshHosts(net, HOSTS, tmp_path_factory.mktemp("ssh")) as hosts:
        try:
            yield hosts
        finally:  # whatever a failed test left in the namespaces (all started by these tests), before they go
            daemons = {str(p.pid) for p in hosts.procs}
            for i in range(HOSTS + 1):
                pids = subprocess.run(["ip", "netns", "pids", net.ns(i)], capture_output=True, text=True, timeout=30).stdout.split()
                for pid in set(pids) - daemons:
                    with contextlib.suppress(ProcessLookupError):
                        os.kill(int(pid), signal.SIGKILL)


def _hosts_file(tmp_path: Path, cluster: SshHosts, extra: str = "") -> Path:
    path = tmp_path / "hosts.txt"
    path.write_text("# the hosts of the fabric\n" + "".join(f"root@{cluster.net.address(i)}\n" for i in range(HOSTS)) + extra)
    return path


def _launch(cluster: SshHosts, hosts: Path, run_dir: Path, *args: str) -> subprocess.Popen[str]:
    """``gossip launch --hosts`` started inside the launcher's namespace."""
    argv = [sys.executable, "-m", "gossip", "launch", "--hosts", str(hosts), "--run-dir", str(run_dir), "--no-progress", *args]
    argv += [w for option in cluster.options for w in ("--ssh-option", option)]
    return subprocess.Popen(
        cluster.net.command(LAUNCHER, argv),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        cwd=REPO,
        env=dict(os.environ, PYTHONUNBUFFERED="1", MPLBACKEND="Agg"),
        start_new_session=True,
    )


def _left(cluster: SshHosts) -> dict[str, list[str]]:
    """Namespace → the command line of every process in it (``ip netns pids``) but the host's own sshd."""
    daemons = {str(p.pid) for p in cluster.procs}
    found = {}
    for i in range(HOSTS + 1):
        pids = subprocess.run(["ip", "netns", "pids", cluster.net.ns(i)], capture_output=True, text=True, timeout=30).stdout.split()
        found[cluster.net.ns(i)] = [" ".join(command_of(pid)) for pid in pids if pid not in daemons and command_of(pid)]
    return found


def _nodes_running(cluster: SshHosts) -> list[int]:
    """How many ``python -m gossip node`` processes run in each namespace (not the ssh sessions that started them)."""
    return [
        sum(Path(line.split()[0]).name.startswith("python") and " -m gossip node " in line for line in lines)
        for lines in _left(cluster).values()
    ]


def _wait_for_rounds(proc: subprocess.Popen[str], run_dir: Path) -> None:
    """Until every node recorded a round (the launcher still running)."""
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline and not all(read_jsonl(run_dir / "nodes" / f"node-{i}.jsonl") for i in range(NODES)):
        assert proc.poll() is None, proc.communicate()[1]
        time.sleep(0.3)


def _finish(proc: subprocess.Popen[str], timeout: float) -> tuple[int, str]:
    try:
        _out, err = proc.communicate(timeout=timeout)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
    return proc.returncode, err


def test_four_nodes_on_two_hosts_train_to_completion(tmp_path: Path, cluster: SshHosts) -> None:
    """Four nodes, two per host, on a ring, CURVE on: every node trains every round with both neighbours' models
    arriving across hosts, encrypted with the keys the launcher made in the shared run directory; the addresses are
    the hosts' own (port 7000 and 7001 on each); summary.json names every node finished, the report is written,
    and no node process is left on any host."""
    run_dir = tmp_path / "run"
    code, err = _finish(
        _launch(
            cluster, _hosts_file(tmp_path, cluster), run_dir, "-n", str(NODES), "-t", "ring", "-r", "5", "--set", "security.curve=true"
        ),
        120,
    )
    assert code == 0, err
    config = tomllib.loads((run_dir / "config.toml").read_text())
    assert config["security"]["curve"] is True and (run_dir / "keys" / f"node-{NODES - 1}.key_secret").exists()
    addresses = config["transport"]["addresses"]
    assert addresses == [f"tcp://{cluster.net.address(i // 2)}:{7000 + i % 2}" for i in range(NODES)]
    for i in range(NODES):
        records = read_jsonl(run_dir / "nodes" / f"node-{i}.jsonl")
        assert [r["round"] for r in records] == list(range(5))
        assert all(r["arrived"] == 2 and r["missing"] == [] for r in records), records
        assert f"listening on tcp://0.0.0.0:{7000 + i % 2}" in (run_dir / "nodes" / f"node-{i}.log").read_text()
    summary = json.loads((run_dir / "summary.json").read_text())
    assert [n["status"] for n in summary["per_node"]] == ["finished"] * NODES
    assert f"root@{cluster.net.address(1)} runs nodes 2..3" in err
    assert (run_dir / "report" / "report.md").exists()
    assert _left(cluster) == {cluster.net.ns(i): [] for i in range(HOSTS + 1)}


def test_ctrl_c_stops_every_node_on_every_host(tmp_path: Path, cluster: SshHosts) -> None:
    """SIGINT to the launcher mid-run: every remote node gets SIGTERM over ssh, writes its files and ends
    'stopped'; the launcher exits 130; afterwards no ``gossip node`` process runs in any namespace."""
    run_dir = tmp_path / "run"
    proc = _launch(cluster, _hosts_file(tmp_path, cluster), run_dir, "-n", str(NODES), "-t", "ring", "-r", "100000")
    try:
        _wait_for_rounds(proc, run_dir)
        assert _nodes_running(cluster) == [2] * HOSTS + [0]
        proc.send_signal(signal.SIGINT)
        code, err = _finish(proc, 60)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
    assert code == 130, err
    assert "interrupted; every node was stopped" in err
    summary = json.loads((run_dir / "summary.json").read_text())
    assert [n["status"] for n in summary["per_node"]] == ["stopped"] * NODES
    assert _left(cluster) == {cluster.net.ns(i): [] for i in range(HOSTS + 1)}


def test_a_launcher_killed_outright_leaves_no_node_on_any_host(tmp_path: Path, cluster: SshHosts) -> None:
    """SIGKILL to the launcher mid-run: its ssh connections close, and on every host the end of the connection
    stops the node as the launcher would have (SIGTERM: status 'stopped', a checkpoint); nothing is left."""
    run_dir = tmp_path / "run"
    proc = _launch(cluster, _hosts_file(tmp_path, cluster), run_dir, "-n", str(NODES), "-t", "ring", "-r", "100000")
    try:
        _wait_for_rounds(proc, run_dir)
        assert _nodes_running(cluster) == [2] * HOSTS + [0]
        os.killpg(proc.pid, signal.SIGKILL)  # the launcher's process group: the launcher alone (its ssh clients have their own)
        proc.communicate(timeout=30)
        summaries = [run_dir / "nodes" / f"node-{i}.json" for i in range(NODES)]
        deadline = time.monotonic() + 60  # the nodes stop, then their wrappers exit: wait for both
        while time.monotonic() < deadline and any(_left(cluster).values()):
            time.sleep(0.3)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
    assert _left(cluster) == {cluster.net.ns(i): [] for i in range(HOSTS + 1)}
    assert [json.loads(s.read_text())["status"] for s in summaries] == ["stopped"] * NODES
    assert all((run_dir / "nodes" / f"node-{i}.ckpt.npz").exists() for i in range(NODES))


def test_a_remote_node_killed_mid_run_is_restarted_on_its_host(tmp_path: Path, cluster: SshHosts) -> None:
    """``--restart``: node 3 (host 1) gets SIGKILL on its host; the launcher names the signal, starts it again over ssh
    from its checkpoint, and the run finishes with exit 0 and one restart in the summary."""
    run_dir, victim = tmp_path / "run", 3
    paced = ["--set", "faults.slow_nodes=[0, 1, 2, 3]", "--set", "faults.step_delay_s=0.1"]
    args = ["-n", str(NODES), "-t", "ring", "-r", "150", "--dataset", "digits", "--model", "logreg", "--restart", "--no-report"]
    args += [
        "--set",
        "transport.round_timeout_s=1",
        "--set",
        "training.checkpoint_every=4",
        "--set",
        "training.checkpoint_interval_s=0",
        *paced,
    ]
    proc = _launch(cluster, _hosts_file(tmp_path, cluster), run_dir, *args)
    try:
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline and len(read_jsonl(run_dir / "nodes" / f"node-{victim}.jsonl")) < 9:
            assert proc.poll() is None, proc.communicate()[1]
            time.sleep(0.05)
        pid = (run_dir / "nodes" / f"node-{victim}.pid").read_text().strip()
        assert cluster.ssh(1, f"kill -KILL {pid}", from_host=LAUNCHER).returncode == 0
        code, err = _finish(proc, 240)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
    assert code == 0, err[-3000:]
    assert f"node {victim} died (killed by SIGKILL); restarting it from its checkpoint (1 of 3)" in err
    summary = json.loads((run_dir / "summary.json").read_text())
    assert summary["dead_nodes"] == [] and summary["restarts"] == {str(victim): 1}
    assert sum("resumed" in r for r in read_jsonl(run_dir / "nodes" / f"node-{victim}.jsonl")) == 1


def test_a_host_ssh_cannot_reach_is_refused_before_anything_starts(tmp_path: Path, cluster: SshHosts) -> None:
    """A hosts file naming a machine without sshd: one line naming that host, exit 2, no run directory."""
    run_dir = tmp_path / "run"
    hosts = _hosts_file(tmp_path, cluster, extra=f"{cluster.net.address(LAUNCHER)}\n")  # the launcher's host runs no sshd
    code, err = _finish(_launch(cluster, hosts, run_dir, "-n", str(NODES), "-t", "ring", "-r", "5"), 60)
    assert code == 2, err
    assert err.strip().splitlines() == [err.strip()] and err.startswith(
        f"gossip: error: cannot reach host {cluster.net.address(LAUNCHER)} over ssh"
    ), err
    assert not run_dir.exists()
