"""Connection-level attacks on a live node: it survives, its descriptors and memory stay bounded, its run goes on.

Two real ``gossip node`` processes train together (paced: at least 50 ms a round, checkpoints every round, so
node 0 opens files while it is attacked); once node 0 is a few rounds in, an attacker process
(``tests/attacks.py``, plain sockets) goes at it. A sampler reads node 0's descriptors
(``/proc/PID/fd``), threads and RSS every 20 ms. Each test asserts that node 0 finishes every round,
that what it holds stays under a stated bound and that /metrics counts the refusals. How long its rounds took,
beside an undisturbed run's, is printed (``pytest -s``), not asserted: speed is measured in bench/.
"""

from __future__ import annotations

import json
import os
import resource
import signal
import subprocess
import sys
import threading
import time
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from gossip.config import config_to_toml, load_config
from gossip.results.rundir import read_jsonl
from tests.conftest import REPO, Processes, free_port
from tests.waiting import wait_until

pytestmark = [pytest.mark.slow, pytest.mark.e2e]

ROUNDS = 100
HANDSHAKE_TIMEOUT_S = 2.0


@dataclass
class Sampled:
    """Node 0 seen from /proc while it runs: the largest and last values."""

    fds: list[int] = field(default_factory=list)
    threads: list[int] = field(default_factory=list)
    rss_mb: list[float] = field(default_factory=list)


@dataclass
class Outcome:
    code: int
    rounds: int
    duration_s: float  # from node 0's first round record to its last
    before: Sampled  # the second before the attack
    during: Sampled  # from the attack's start to the node's exit
    attack: dict[str, object]
    refused: dict[str, float]
    rejected: float
    after_attack_fds: int  # one second after the attacker returned
    scrape_s: list[float]  # /metrics scrapes made during the attack, in seconds each


def _proc_sample(pid: int) -> tuple[int, int, float] | None:
    try:
        fds = len(os.listdir(f"/proc/{pid}/fd"))
        threads = len(os.listdir(f"/proc/{pid}/task"))
        rss = next(int(line.split()[1]) for line in Path(f"/proc/{pid}/status").read_text().splitlines() if line.startswith("VmRSS:"))
    except (OSError, StopIteration):
        return None
    return fds, threads, rss / 1024


def _sample(pid: int, into: Callable[[], Sampled], stop: threading.Event) -> None:
    while not stop.is_set():
        got = _proc_sample(pid)
        if got is None:
            return
        target = into()
        target.fds.append(got[0])
        target.threads.append(got[1])
        target.rss_mb.append(got[2])
        time.sleep(0.02)


def _scrape(port: int) -> tuple[dict[str, float], float]:
    text = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10).read().decode()
    refused: dict[str, float] = {}
    rejected = 0.0
    for line in text.splitlines():
        if line.startswith("gossip_connections_refused_total{"):
            refused[line.split('reason="')[1].split('"')[0]] = float(line.rsplit(" ", 1)[1])
        elif line.startswith("gossip_messages_rejected_total{"):
            rejected += float(line.rsplit(" ", 1)[1])
    return refused, rejected


def _tail(tmp_path: Path) -> str:
    """The last lines of both nodes' logs, for a failure message."""
    return "\n".join(
        f"{name}: ...\n" + "".join((tmp_path / name).read_text().splitlines(keepends=True)[-8:]) for name in ("node0.log", "node1.log")
    )


def _records(run_dir: Path) -> list[dict[str, object]]:
    path = run_dir / "nodes" / "node-0.jsonl"
    return read_jsonl(path) if path.exists() else []


def run_pair(tmp_path: Path, processes: Processes, attack: list[str] | None, *, nofile: int = 0, scrape_during: bool = False) -> Outcome:
    """Two paced nodes; ``attack`` (``tests/attacks.py`` arguments, ``{node}``/``{metrics}`` for node 0's
    ports) starts once node 0 recorded 5 rounds; ``nofile``: node 0's ``ulimit -n``."""
    p0, p1, m0, m1 = free_port(), free_port(), free_port(), free_port()
    cfg = load_config(
        env={},
        overrides={
            "run.nodes": 2,
            "topology.spec": "complete",
            "training.rounds": ROUNDS,
            "training.local_steps": 1,
            "training.checkpoint_every": 1,
            "training.checkpoint_interval_s": 0.0,
            "faults.slow_nodes": [0, 1],
            "faults.step_delay_s": 0.05,
            "transport.addresses": [f"tcp://127.0.0.1:{p0}", f"tcp://127.0.0.1:{p1}"],
            "transport.round_timeout_s": 20.0,
            "metrics.ports": [m0, m1],
            "security.handshake_timeout_s": HANDSHAKE_TIMEOUT_S,
        },
    )
    config = tmp_path / "run.toml"
    config.write_text(config_to_toml(cfg))
    run_dir = tmp_path / "run"

    def limit() -> None:
        resource.setrlimit(resource.RLIMIT_NOFILE, (nofile, nofile))

    with open(tmp_path / "node0.log", "wb") as log0, open(tmp_path / "node1.log", "wb") as log1:
        # --hold: /metrics stays up after the last round, for the scrape at the end
        node0 = processes.gossip(
            "node",
            "--config",
            str(config),
            "--id",
            "0",
            "--run-dir",
            str(run_dir),
            "--hold",
            "forever",
            stdout=log0,
            stderr=log0,
            preexec_fn=limit if nofile else None,
        )
        processes.gossip("node", "--config", str(config), "--id", "1", "--run-dir", str(run_dir), stdout=log1, stderr=log1)

    def alive() -> None:
        assert node0.poll() is None, (tmp_path / "node0.log").read_text()

    started = time.monotonic()
    wait_until(lambda: len(_records(run_dir)) >= 5, timeout_s=120, what="node 0 never got going", still=alive)
    before, during = Sampled(), Sampled()
    current = [before]
    stop = threading.Event()
    sampler = threading.Thread(target=_sample, args=(node0.pid, lambda: current[0], stop), daemon=True)
    sampler.start()
    time.sleep(1.0)
    current[0] = during
    report: dict[str, object] = {}
    scrape_s: list[float] = []
    after_fds = 0
    if attack is not None:
        args = [a.format(node=p0, metrics=m0) for a in attack]
        attacker = subprocess.Popen([sys.executable, "-m", "tests.attacks", *args], cwd=REPO, stdout=subprocess.PIPE, text=True)
        while scrape_during and attacker.poll() is None:
            t0 = time.monotonic()
            try:
                urllib.request.urlopen(f"http://127.0.0.1:{m0}/metrics", timeout=10).read()
            except OSError as exc:
                raise AssertionError(f"a scrape failed after {time.monotonic() - t0:.1f} s: {exc}\n{_tail(tmp_path)}") from None
            scrape_s.append(time.monotonic() - t0)
            time.sleep(0.3)
        out, _ = attacker.communicate(timeout=120)
        report = json.loads(out.strip().splitlines()[-1])
        time.sleep(1.0)
        after_fds = len(os.listdir(f"/proc/{node0.pid}/fd")) if node0.poll() is None else 0
    while node0.poll() is None and len(_records(run_dir)) < ROUNDS and time.monotonic() < started + 420:
        time.sleep(0.1)
    refused, rejected = _scrape(m0) if node0.poll() is None else ({}, 0.0)
    node0.send_signal(signal.SIGTERM)
    code = node0.wait(timeout=60)
    stop.set()
    sampler.join()
    records = _records(run_dir)
    duration = float(records[-1]["time"]) - float(records[0]["time"]) if records else 0.0  # type: ignore[arg-type]
    return Outcome(code, len(records), duration, before, during, report, refused, rejected, after_fds, scrape_s)


@pytest.fixture(scope="module")
def undisturbed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Outcome]:
    """The same pair with nobody attacking: the yardstick for the attacked runs' duration."""
    procs = Processes()
    try:
        yield run_pair(tmp_path_factory.mktemp("undisturbed"), procs, None)
    finally:
        procs.cleanup()


def _finished_in_time(attacked: Outcome, undisturbed: Outcome) -> None:
    b, d = attacked.before, attacked.during
    print(  # numbers for the README (pytest -s)
        f"\n  rounds {attacked.duration_s:.2f} s (undisturbed {undisturbed.duration_s:.2f} s); descriptors {max(b.fds)} -> max {max(d.fds)}"
        f" -> {attacked.after_attack_fds} after; threads {max(b.threads)} -> max {max(d.threads)}; RSS {max(b.rss_mb):.0f} -> max"
        f" {max(d.rss_mb):.0f} MB\n  attack {attacked.attack}\n  refused {attacked.refused}; rejected messages {attacked.rejected:.0f}"
        + (f"; scrapes during the attack: max {max(attacked.scrape_s):.3f} s" if attacked.scrape_s else "")
    )
    assert undisturbed.code == 0 and undisturbed.rounds == ROUNDS
    assert attacked.code == 0, "node 0 died"
    assert attacked.rounds == ROUNDS


def test_a_descriptor_flood_is_refused_and_the_node_keeps_its_files(tmp_path: Path, processes: Processes, undisturbed: Outcome) -> None:
    """Under ``ulimit -n 256``, 300 idle connections that never finish the ZMTP greeting: the node
    accepts a few (its per-address cap), shuts the rest at once, closes the few at its handshake
    deadline, and goes on writing a checkpoint every round. Without the guard libzmq accepted all 300
    and the next checkpoint failed with "Too many open files"."""
    out = run_pair(tmp_path, processes, ["flood", "--port", "{node}", "--count", "300", "--hold", str(3 * HANDSHAKE_TIMEOUT_S)], nofile=256)
    _finished_in_time(out, undisturbed)
    assert out.attack["opened"] == 300
    assert out.attack["closed_by_node"] == 300, out.attack  # refused at once, or at the handshake deadline
    assert out.refused["too_many_from_address"] >= 250, out.refused
    assert out.refused["handshake_timeout"] >= 1, out.refused
    assert out.refused["descriptors"] == 0, out.refused  # the kernel never had to refuse an accept: the reserve held
    # Connections libzmq accepted before the guard shut them: a burst, never near the limit, gone after
    assert max(out.during.fds) <= 256 - 32, (max(out.before.fds), max(out.during.fds))
    assert out.after_attack_fds <= max(out.before.fds) + 4, (max(out.before.fds), out.after_attack_fds)
    assert max(out.during.rss_mb) <= max(out.before.rss_mb) + 64


def test_slow_metrics_clients_cost_no_threads_and_few_descriptors(tmp_path: Path, processes: Processes, undisturbed: Outcome) -> None:
    """1,000 clients that send half an HTTP request to /metrics and wait: the endpoint keeps its one
    thread and at most 16 connections, closes every slow client (read deadline 5 s, or evicted by a
    newer one), and a normal scrape still answers meanwhile."""
    out = run_pair(tmp_path, processes, ["slow-http", "--port", "{metrics}", "--count", "1000", "--hold", "8"], scrape_during=True)
    _finished_in_time(out, undisturbed)
    assert out.attack["opened"] == 1000
    assert out.attack["closed_by_node"] == 1000, out.attack
    assert max(out.during.threads) <= max(out.before.threads), (out.before.threads, out.during.threads)
    assert max(out.during.fds) <= max(out.before.fds) + 20, (max(out.before.fds), max(out.during.fds))
    assert out.scrape_s and max(out.scrape_s) < 2.0, out.scrape_s


@pytest.mark.parametrize("socket_type", ["PUSH", "DEALER"])
def test_reconnects_under_one_routing_id_leave_no_descriptors(
    tmp_path: Path, processes: Processes, undisturbed: Outcome, socket_type: str
) -> None:
    """400 connections under routing id "same", each queueing messages and closing after 5 ms: every
    descriptor is given back (a ROUTER kept each duplicate connection open for good: 47 → 408), and the
    messages that arrived are counted as rejected. A DEALER is refused at the handshake (the node's
    socket is a PULL) and leaves nothing behind either."""
    out = run_pair(
        tmp_path, processes, ["reconnects", "--port", "{node}", "--count", "400", "--queued", "200", "--socket-type", socket_type]
    )
    _finished_in_time(out, undisturbed)
    assert out.after_attack_fds <= max(out.before.fds) + 8, (max(out.before.fds), out.after_attack_fds)
    if socket_type == "PUSH":
        assert out.rejected >= 400, out.rejected


@pytest.mark.parametrize("frame_bytes", [60_000, 0])
def test_an_endless_multipart_message_is_cut_off(tmp_path: Path, processes: Processes, undisturbed: Outcome, frame_bytes: int) -> None:
    """One raw ZMTP connection streams frames with the MORE flag and never a last one (up to 320 MB,
    the issue's 5,242 × 60 kB; and empty frames, which cost libzmq ~30 bytes of memory per wire
    byte): the node shuts it down once it holds more than the largest legal backlog, and its RSS grows
    by less than 100 MB (the unbounded node grew by the whole stream)."""
    out = run_pair(
        tmp_path, processes, ["endless", "--port", "{node}", "--frame-bytes", str(frame_bytes), "--seconds", "8", "--max-mb", "320"]
    )
    _finished_in_time(out, undisturbed)
    assert out.refused["unfinished_message"] == 1, out.refused
    # The node stopped taking the stream (a reset, or a closed window until the kernel drops the orphan)
    assert int(out.attack["sent_bytes"]) < 320e6, out.attack  # type: ignore[call-overload]
    assert out.after_attack_fds <= max(out.before.fds) + 2, (max(out.before.fds), out.after_attack_fds)
    assert max(out.during.rss_mb) <= max(out.before.rss_mb) + 100, (max(out.before.rss_mb), max(out.during.rss_mb))
