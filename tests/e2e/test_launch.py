"""``gossip launch`` end to end: real node processes on loopback, the run directory, and clean shutdown."""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from gossip.results.rundir import read_jsonl
from tests.cli_cases import CliResult, run_cli_cases
from tests.conftest import Processes, run_gossip
from tests.procs import command_of, node_pids

pytestmark = [pytest.mark.slow, pytest.mark.e2e]


def launch(run_dir: Path, *args: str, timeout: float = 600) -> subprocess.CompletedProcess[str]:
    return run_gossip("launch", "--run-dir", str(run_dir), "--no-progress", *args, timeout=timeout)


def ports_free(config_text: str) -> bool:
    """No process listens on any node port any more. SO_REUSEADDR, as every server (and libzmq) sets
    it, so connections in TIME_WAIT — the kernel's, not a leak — do not count."""
    import tomllib

    cfg = tomllib.loads(config_text)
    for address in cfg["transport"]["addresses"]:
        host, port = address.removeprefix("tcp://").rsplit(":", 1)
        with socket.socket() as s:
            s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            try:
                s.bind((host, int(port)))
            except OSError:
                return False
    return True


def test_four_node_ring_runs_to_the_end(tmp_path: Path) -> None:
    """A 4-node ring trains for 6 rounds; every node writes 6 records; the summary names them all."""
    run_dir = tmp_path / "run"
    result = launch(run_dir, "-n", "4", "-t", "ring", "-r", "6", "--lr", "0.05")
    assert result.returncode == 0, result.stderr
    summary = json.loads((run_dir / "summary.json").read_text())
    assert summary["nodes"] == 4 and summary["dead_nodes"] == []
    for node in range(4):
        records = read_jsonl(run_dir / "nodes" / f"node-{node}.jsonl")
        assert [r["round"] for r in records] == list(range(6))
        assert all(r["arrived"] == 2 and r["missing"] == [] for r in records)
        assert records[-1]["accuracy"] is not None
        assert records[-1]["bytes_sent"] > 0 and records[-1]["bytes_received"] > 0
    assert "mean accuracy" in result.stderr
    assert (run_dir / "config.toml").exists() and (run_dir / "topology.graphml").exists()
    assert node_pids(run_dir) == {}
    assert ports_free((run_dir / "config.toml").read_text())


def test_same_config_and_seed_give_identical_results(tmp_path: Path) -> None:
    """Two runs of one config: same per-node accuracies and bit-identical final models (hashes)."""
    args = ("-n", "5", "-t", "er:p=0.6", "-r", "8", "--seed", "3", "--partition", "dirichlet", "--alpha", "0.5")
    a, b = tmp_path / "a", tmp_path / "b"
    for d in (a, b):
        r = launch(d, *args)
        assert r.returncode == 0, r.stderr
    sa = json.loads((a / "summary.json").read_text())["per_node"]
    sb = json.loads((b / "summary.json").read_text())["per_node"]
    assert [n["accuracy"] for n in sa] == [n["accuracy"] for n in sb]
    assert [n["model_hash"] for n in sa] == [n["model_hash"] for n in sb]
    assert len({n["model_hash"] for n in sa}) == 5  # nodes differ from each other (no merge here)


def test_ipc_run_moves_every_model_and_matches_the_tcp_run(tmp_path: Path) -> None:
    """`--ipc`: nodes bind Unix-domain sockets instead of TCP ports, every model arrives, and the
    run is bit for bit the TCP run of the same seed (the transport carries bytes, not maths)."""
    args = ("-n", "4", "-t", "ring", "-r", "6", "--seed", "5", "--no-report")
    tcp, ipc = tmp_path / "tcp", tmp_path / "ipc"
    assert launch(tcp, *args).returncode == 0
    result = launch(ipc, *args, "--ipc")
    assert result.returncode == 0, result.stderr
    import tomllib

    addresses = tomllib.loads((ipc / "config.toml").read_text())["transport"]["addresses"]
    assert len(addresses) == 4 and all(a.startswith("ipc://@gossip-") for a in addresses)
    for node in range(4):
        records = read_jsonl(ipc / "nodes" / f"node-{node}.jsonl")
        assert all(r["arrived"] == 2 for r in records)
    hashes = [[n["model_hash"] for n in json.loads((d / "summary.json").read_text())["per_node"]] for d in (tcp, ipc)]
    assert hashes[0] == hashes[1]


@pytest.mark.parametrize(("direct", "hidden"), [("zero-copy", 300), ("socket-copy", 30)])
def test_direct_sends_train_bit_for_bit_like_snapshot_sends(tmp_path: Path, direct: str, hidden: int) -> None:
    """By default a sync node hands ZeroMQ its live vector: a 1.2 MB model zero-copy (mixed only once
    ZeroMQ let go), a 120 kB one copied by the socket inside send. Either run is bit for bit the run that
    sends a snapshot copy of its own: no model was torn in flight."""
    args = (
        "-n",
        "4",
        "-t",
        "ring",
        "-r",
        "6",
        "--seed",
        "2",
        "--dataset",
        "synthetic",
        "--no-report",
        "--set",
        "data.features=1000",
        "--set",
        f"model.hidden=[{hidden}]",
        "--set",
        "data.train_samples=2000",
    )
    runs = {direct: tmp_path / "direct", "snapshot": tmp_path / "snap"}
    for path, run_dir in runs.items():
        extra = () if path == direct else ("--set", "transport.zero_copy=false")
        result = launch(run_dir, *args, *extra)
        assert result.returncode == 0, result.stderr
        for node in range(4):
            facts = json.loads((run_dir / "nodes" / f"node-{node}.json").read_text())
            assert (facts["parameters"] * 4 >= 1 << 20) == (direct == "zero-copy") and facts["send_path"] == path
            assert all(r["arrived"] == 2 for r in read_jsonl(run_dir / "nodes" / f"node-{node}.jsonl"))
    hashes = [[n["model_hash"] for n in json.loads((d / "summary.json").read_text())["per_node"]] for d in runs.values()]
    assert hashes[0] == hashes[1]


@pytest.mark.parametrize(("interval_s", "written"), [(0, 12), (3600, 1)])
def test_periodic_checkpoints_are_at_least_the_interval_apart(tmp_path: Path, interval_s: int, written: int) -> None:
    """checkpoint_every=1 writes a checkpoint after every round, unless checkpoint_interval_s has not passed
    since the last one (a run of fast rounds would spend its time in fsync); the final one is always written."""
    run_dir = tmp_path / "run"
    result = launch(
        run_dir,
        "-n",
        "2",
        "-t",
        "complete",
        "-r",
        "12",
        "--dataset",
        "digits",
        "--model",
        "logreg",
        "--no-report",
        "--set",
        "training.checkpoint_every=1",
        "--set",
        f"training.checkpoint_interval_s={interval_s}",
    )
    assert result.returncode == 0, result.stderr
    for node in range(2):
        assert json.loads((run_dir / "nodes" / f"node-{node}.json").read_text())["checkpoints_written"] == written


@pytest.mark.parametrize(("interval_s", "logged"), [(0, list(range(12))), (3600, [0, 11])])
def test_a_node_logs_a_round_line_per_interval_and_always_its_first_and_last(tmp_path: Path, interval_s: int, logged: list[int]) -> None:
    """run.log_interval_s = 0 logs every round; a long interval logs the first round and, held back until the
    node stops, the last one — the JSONL still has every round."""
    run_dir = tmp_path / "run"
    result = launch(
        run_dir,
        "-n",
        "2",
        "-t",
        "complete",
        "-r",
        "12",
        "--dataset",
        "digits",
        "--model",
        "logreg",
        "--no-report",
        "--set",
        f"run.log_interval_s={interval_s}",
    )
    assert result.returncode == 0, result.stderr
    for node in range(2):
        log = (run_dir / "nodes" / f"node-{node}.log").read_text()
        assert [int(r) for r in re.findall(rf"gossip\.node node={node} round=(\d+) ", log)] == logged, log[-2000:]
        assert len(read_jsonl(run_dir / "nodes" / f"node-{node}.jsonl")) == 12


@pytest.mark.parametrize(
    ("inherited", "extra"),
    [
        (signal.SIG_DFL, ()),
        (signal.SIG_IGN, ()),
        (signal.SIG_DFL, ("--set", "schedule.mode=none")),
    ],
    ids=["sigint-default", "sigint-ignored", "local-only-rounds"],
)
def test_ctrl_c_stops_every_node_and_frees_every_port(tmp_path: Path, inherited: signal.Handlers, extra: tuple[str, ...]) -> None:
    """SIGINT to the launcher: exit 130, no node process left, no port still bound, records kept, every node
    'stopped' (it saw its SIGTERM, it was not killed) — also when the launcher inherited SIGINT ignored
    (started in the background by a shell without job control), and when no round waits for anything
    (local-only rounds: a node must still serve its event loop, where SIGTERM is handled)."""
    run_dir = tmp_path / "run"
    env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONUNBUFFERED="1")
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "gossip",
            "launch",
            "--run-dir",
            str(run_dir),
            "--no-progress",
            "-n",
            "4",
            "-t",
            "ring",
            "-r",
            "100000",
            *extra,
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
        start_new_session=True,
        preexec_fn=lambda: signal.signal(signal.SIGINT, inherited),
    )
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and not read_jsonl(run_dir / "nodes" / "node-0.jsonl"):
            time.sleep(0.2)
        assert read_jsonl(run_dir / "nodes" / "node-0.jsonl"), "no round finished"
        proc.send_signal(signal.SIGINT)
        _out, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
    assert proc.returncode == 130, err
    assert "interrupted" in err
    assert node_pids(run_dir) == {}
    assert ports_free((run_dir / "config.toml").read_text())
    summary = json.loads((run_dir / "summary.json").read_text())
    assert all(n["status"] == "stopped" for n in summary["per_node"])


def _parent_of(pid: int) -> int:
    return int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[1])


def test_nodes_are_forks_of_one_warm_server_and_stop_when_the_launcher_is_killed(tmp_path: Path, processes: Processes) -> None:
    """By default every node is a fork of one server process (the launcher's child) that imported torch once:
    each node in its own session, named and titled as the `gossip node` command it stands for. A SIGKILL of
    the launcher still stops every node cleanly: the server leaves with its launcher, and each node gets
    SIGTERM from the kernel, checkpoints and says it stopped."""
    run_dir = tmp_path / "run"
    launcher = processes.gossip(
        "launch",
        "--run-dir",
        str(run_dir),
        "--no-progress",
        "--no-report",
        "-n",
        "4",
        "-t",
        "ring",
        "-r",
        "100000",
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and not all(read_jsonl(run_dir / "nodes" / f"node-{i}.jsonl") for i in range(4)):
        assert launcher.poll() is None
        time.sleep(0.1)
    nodes = node_pids(run_dir)
    assert sorted(nodes) == [0, 1, 2, 3]
    servers = {_parent_of(pid) for pid in nodes.values()}
    assert len(servers) == 1 and launcher.pid not in servers
    assert _parent_of(servers.pop()) == launcher.pid
    for i, pid in nodes.items():
        assert os.getsid(pid) == pid
        assert Path(f"/proc/{pid}/comm").read_text().strip() == "gossip node"
        words = command_of(pid)
        assert words[1:5] == ["-m", "gossip", "node", "--config"] and words[words.index("--id") + 1] == str(i)
    launcher.kill()
    launcher.wait()
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and node_pids(run_dir):
        time.sleep(0.1)
    assert node_pids(run_dir) == {}
    for i in range(4):
        assert f"node {i} stopped after" in (run_dir / "nodes" / f"node-{i}.log").read_text()
        assert (run_dir / "nodes" / f"node-{i}.ckpt.npz").exists()


def test_forked_and_spawned_nodes_train_the_same_models(tmp_path: Path) -> None:
    """A forked node is the same program as `gossip node`: the same seed gives bit-identical final models
    whether the launcher forks its nodes (the default) or spawns each one (`--spawn`)."""
    args = ("-n", "4", "-t", "ring", "-r", "6", "--seed", "11", "--no-report")
    forked, spawned = tmp_path / "forked", tmp_path / "spawned"
    assert launch(forked, *args).returncode == 0
    result = launch(spawned, *args, "--spawn")
    assert result.returncode == 0, result.stderr
    hashes = [[n["model_hash"] for n in json.loads((d / "summary.json").read_text())["per_node"]] for d in (forked, spawned)]
    assert hashes[0] == hashes[1] and len(set(hashes[0])) == 4


def test_a_failing_node_stops_the_run(tmp_path: Path) -> None:
    """A node that cannot start (its port was taken after the run was prepared) fails the whole run:
    exit 1, the node named with its exit code (1, a runtime failure: the port was free when the run was planned)
    and the tail of its log, and no process left behind."""
    import io
    import tomllib

    from gossip.config import load_config
    from gossip.run.launch import prepare_run, run_prepared

    cfg = load_config(env={}, overrides={"run.nodes": 4, "topology.spec": "ring", "training.rounds": 50})
    resolved, run_dir, topology = prepare_run(cfg, run_dir=tmp_path / "run")
    address = tomllib.loads((run_dir / "config.toml").read_text())["transport"]["addresses"][2]
    host, port = address.removeprefix("tcp://").rsplit(":", 1)
    out = io.StringIO()
    with socket.socket() as thief:
        thief.bind((host, int(port)))
        thief.listen()
        result = run_prepared(resolved, run_dir, topology, progress=False, out=out)
    assert result.exit_code == 1, out.getvalue()
    assert "node 2 exited with code 1 (a runtime failure)" in out.getvalue(), out.getvalue()
    assert "already in use" in out.getvalue(), out.getvalue()
    assert node_pids(run_dir) == {}


# Each mistake a user can make on the command line, and what its one line says
MISTAKES = [
    (("-n", "4", "-t", "rnig"), "unknown topology 'rnig'"),
    (("-t", "{missing}"), "topology file not found"),
    (("-t", "{garbage}"), "garbage.edges line 1"),
    (("-n", "32", "-t", "{ring16}"), "larger than"),
    (("-n", "4", "-t", "ring", "--dataset", "mnsit"), "unknown dataset 'mnsit'"),
    (("-n", "4", "-t", "ring", "--set", "training.lrr=1"), "unknown key 'lrr' in [training]"),
    (("-n", "4", "-t", "ring", "--config", "{badtoml}"), "invalid TOML"),
    (("-n", "4", "-t", "ring", "--dataset", "mnist"), "mnist"),
    (("-n", "4", "-t", "ring", "--base-port", "{busy}"), "already in use"),
    (("-n", "4", "-t", "ring", "--rounds", "0"), "[training] rounds must be an integer in 1..10000000, got 0"),
    (("-n", "4", "-t", "ring", "--bogus"), "unrecognized arguments"),
    (("-n", "4", "-t", "ring", "--ipc", "--base-port", "7000"), "exclude each other"),
    (("-n", "10000", "-t", "ring", "--rounds", "1"), "10000 node processes need about"),
    (("-n", "100000", "-t", "ring", "--rounds", "1"), "[run] nodes must be an integer in 0..10000, got 100000"),
]


@pytest.fixture(scope="module")
def mistakes(tmp_path_factory: pytest.TempPathFactory) -> list[CliResult]:
    """Every mistake through ``gossip launch`` in one interpreter (tests/cli_cases.py), a port held busy meanwhile."""
    base = tmp_path_factory.mktemp("mistakes")
    repo = Path(__file__).resolve().parents[2]
    garbage = base / "garbage.edges"
    garbage.write_text("this is not a graph\n")
    badtoml = base / "bad.toml"
    badtoml.write_text("[training\n")
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        fills = {
            "{missing}": str(base / "nope.edges"),
            "{garbage}": str(garbage),
            "{ring16}": str(repo / "topologies" / "ring-16.edges"),
            "{badtoml}": str(badtoml),
            "{busy}": str(busy.getsockname()[1]),
        }
        cases = [
            ["launch", "--run-dir", str(base / f"run-{k}"), "--no-progress", *(fills.get(a, a) for a in args)]
            for k, (args, _) in enumerate(MISTAKES)
        ]
        return run_cli_cases(cases)


@pytest.mark.parametrize(("case", "message"), [(k, message) for k, (_, message) in enumerate(MISTAKES)])
def test_user_mistakes_are_one_line_and_exit_2(mistakes: list[CliResult], case: int, message: str) -> None:
    """Each mistake a user can make ends with one clear line on stderr and exit code 2, no traceback."""
    r = mistakes[case]
    assert r.returncode == 2, r.stderr
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1, r.stderr
    assert message in lines[0]
    assert "Traceback" not in r.stderr


def test_curve_run_trains_with_keys_made_by_the_launcher(tmp_path: Path) -> None:
    """`--set security.curve=true`: the launcher makes per-node keys in the run directory and the
    encrypted, authenticated run completes like a plain one."""
    run_dir = tmp_path / "run"
    result = launch(run_dir, "-n", "4", "-t", "ring", "-r", "5", "--set", "security.curve=true")
    assert result.returncode == 0, result.stderr
    assert len(list((run_dir / "keys").glob("node-*.key_secret"))) == 4
    for node in range(4):
        records = read_jsonl(run_dir / "nodes" / f"node-{node}.jsonl")
        assert len(records) == 5 and all(r["arrived"] == 2 for r in records)


# Imported by other commands (generators, GraphML, reports, the launcher's Prometheus files, the data
# split), never needed by a synchronous node: each costs every node process memory (NetworkX ~12 MiB,
# numpy.random ~3 MiB).
NOT_IN_A_NODE = (
    "networkx",
    "yaml",
    "matplotlib",
    "sklearn",
    "mnist1d",
    "statistics",
    "numpy.random",
    "gossip.run.launch",
    "gossip.results.report",
)


def _imported(log: str) -> set[str]:
    """The modules in Python's import log (PYTHONPROFILEIMPORTTIME / -X importtime)."""
    return {line.rsplit("|", 1)[1].strip() for line in log.splitlines() if line.startswith("import time:")}


def _unwanted(imported: set[str]) -> list[str]:
    return sorted(m for m in imported if m.split(".")[0] in NOT_IN_A_NODE or m in NOT_IN_A_NODE)


def test_node_processes_import_no_networkx_yaml_or_plotting(tmp_path: Path) -> None:
    """The launcher hands its nodes topology.json and their data split; a node process then never imports
    NetworkX, YAML, matplotlib or numpy.random.

    Python's own import log (PYTHONPROFILEIMPORTTIME, inherited by the nodes) names every module a
    real node process imported, in its log file: here nodes started with ``--spawn``, each its own
    ``python -m gossip node`` as Compose and Kubernetes run it. (Forked nodes: the next test.)
    """
    run_dir = tmp_path / "run"
    result = run_gossip(
        "launch",
        "--run-dir",
        str(run_dir),
        "--no-progress",
        "--no-report",
        "-n",
        "3",
        "-t",
        "ring",
        "-r",
        "2",
        "--spawn",
        env={"PYTHONPROFILEIMPORTTIME": "1"},
    )
    assert result.returncode == 0, result.stderr[-2000:]
    assert "| networkx" in result.stderr  # the launcher itself generated the ring with NetworkX
    import tomllib

    spec = tomllib.loads((run_dir / "config.toml").read_text())["topology"]["spec"]
    assert spec == str(run_dir / "topology.json") and (run_dir / "topology.graphml").exists() and (run_dir / "shards.npz").exists()
    for node in range(3):
        log = (run_dir / "nodes" / f"node-{node}.log").read_text()
        imported = _imported(log)
        assert "torch" in imported and "gossip.node.node" in imported, log[-2000:]
        assert _unwanted(imported) == []


def test_forked_nodes_and_their_fork_server_import_no_networkx_yaml_or_plotting(tmp_path: Path) -> None:
    """The same for nodes forked from the fork server (the default): what the server preloads, imported in a
    fresh interpreter, holds torch and the node but none of those modules; nor does any forked node import
    one after the fork (its own import log, in its log file)."""
    from gossip.run.forkserver import PRELOAD

    probe = subprocess.run(
        [sys.executable, "-X", "importtime", "-c", "; ".join(f"import {m}" for m in PRELOAD)],
        capture_output=True,
        text=True,
        timeout=120,
        env=dict(os.environ, OMP_NUM_THREADS="1"),
    )
    assert probe.returncode == 0, probe.stderr[-2000:]
    preloaded = _imported(probe.stderr)
    assert {"torch", "gossip.node.node", "gossip.node.daemon"} <= preloaded  # a forked node runs the daemon, not the CLI
    assert _unwanted(preloaded) == []
    run_dir = tmp_path / "run"
    result = run_gossip(
        "launch",
        "--run-dir",
        str(run_dir),
        "--no-progress",
        "--no-report",
        "-n",
        "3",
        "-t",
        "ring",
        "-r",
        "2",
        env={"PYTHONPROFILEIMPORTTIME": "1"},
    )
    assert result.returncode == 0, result.stderr[-2000:]
    for node in range(3):
        log = (run_dir / "nodes" / f"node-{node}.log").read_text()
        assert "finished" in log or "stopped" in log, log[-2000:]
        assert _unwanted(_imported(log)) == [], log[-2000:]
