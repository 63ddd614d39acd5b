"""A live member of an open network under hostile membership messages: it refuses and counts each, and its memory stays flat.

The test plays strangers that speak the wire for real (ZeroMQ PUSH sockets with a node-id envelope): oversized
member lists, entries that claim the member's own id, addresses outside ``[membership] allow``, and a flood of
joins from many ids. The member is ``gossip node`` in its own process; its summary counts what it refused.
"""

from __future__ import annotations

import json
import signal
import subprocess
import time
import urllib.request
from pathlib import Path

import msgpack
import pytest
import zmq

from gossip.config import load_config
from gossip.node.plan import run_id_of
from tests.conftest import Processes, free_port
from tests.waiting import wait_until

pytestmark = [pytest.mark.slow, pytest.mark.e2e]

SETS = {
    "membership.enabled": "true",
    "training.mode": "async",
    "training.rounds": "1000000",
    "training.period_s": "0.2",
    "data.dataset": "digits",
    "model.name": "logreg",
    "run.nodes": "4",
    "security.max_messages_per_s": "0",  # no per-sender budget: every message reaches validation, and the join limit shows
}
FLOOD = 4000  # joins, each from its own id


def _rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise AssertionError("no VmRSS")


def test_a_member_refuses_hostile_membership_input_and_its_memory_stays_flat(tmp_path: Path, processes: Processes) -> None:
    """Oversized lists, self-spoofing, forbidden addresses are refused under their reasons; joins beyond the rate are
    refused as ``join_flood``; the member keeps training; its RSS grows by less than 16 MiB over the flood."""
    port, metrics_port = free_port(), free_port()
    address = f"tcp://127.0.0.1:{port}"
    sets = [x for k, v in {**SETS, "metrics.port": str(metrics_port)}.items() for x in ("--set", f"{k}={v}")]
    run_dir = tmp_path / "run"
    member = processes.gossip("node", "--id", "0", "--address", address, "--run-dir", str(run_dir), *sets, stderr=subprocess.PIPE)
    records = run_dir / "nodes" / "node-0.jsonl"
    wait_until(
        lambda: records.exists() and records.stat().st_size > 0, timeout_s=60, what="the member trains", still=lambda: _alive(member)
    )
    run_id = run_id_of(load_config(None, overrides=SETS))

    def header(kind: str, src: int, **fields: object) -> bytes:
        entry = [src, f"tcp://127.0.0.1:{port + 1}", b""]
        return msgpack.packb({"v": 1, "kind": kind, "run": run_id, "src": src, "round": 0, "me": entry, **fields}, use_bin_type=True)

    ctx = zmq.Context()
    push = ctx.socket(zmq.PUSH)  # one connection; each message names its sender in the envelope, as any member's does
    push.setsockopt(zmq.LINGER, 0)
    push.setsockopt(zmq.SNDHWM, 100_000)
    push.connect(address)

    def send(src: int, frame: bytes) -> None:
        push.send_multipart([str(src).encode(), frame])

    hostile = {
        "too_many_members": [header("shuffle", 101, m=[[200 + k, f"tcp://127.0.0.1:{port + 2}", b""] for k in range(40)])],
        "bad_member": [header("shuffle", 102, m=[[0, "tcp://127.0.0.1:9999", b""]])],  # someone else at the member's own id
        "address_not_allowed": [
            header("shuffle", 103, m=[[300, "tcp://10.0.0.1:7000", b""]]),
            header("shuffle", 104, m=[[301, "ipc:///tmp/x", b""]]),
            header("join", 105, me=[105, "tcp://127.0.0.1:80", b""]),  # port outside [membership] ports
        ],
    }
    try:
        for frames in hostile.values():
            for frame in frames:
                for _ in range(50):
                    send(int(msgpack.unpackb(frame)["src"]), frame)
        time.sleep(1.0)
        before = _rss_kib(member.pid)
        for k in range(FLOOD):
            send(1000 + k % 1000, header("join", 1000 + k % 1000))
            if k % 1000 == 999:
                time.sleep(0.2)
        time.sleep(2.0)
        after = _rss_kib(member.pid)
        assert member.poll() is None
        scraped = urllib.request.urlopen(f"http://127.0.0.1:{metrics_port}/metrics", timeout=10).read().decode()
    finally:
        push.close()
        ctx.term()
    member.send_signal(signal.SIGTERM)
    _out, err = member.communicate(timeout=60)
    summary = json.loads((run_dir / "nodes" / "node-0.json").read_text())
    rejected = summary["rejected"]
    assert rejected.get("too_many_members") == 50
    assert rejected.get("bad_member") == 50
    assert rejected.get("address_not_allowed") == 150
    assert rejected.get("join_flood", 0) >= FLOOD // 2, rejected  # 20 joins a second are answered, no more
    assert summary["membership"]["joins"] < FLOOD // 2
    assert len(summary["membership"]["view"]) <= 8  # the view stays its size whatever the flood
    assert after - before < 16 * 1024, (before, after)
    assert summary["rounds_completed"] > 5, err.decode()[-2000:]
    # what Prometheus reads: the protocol's events, the view, and every refusal under its reason
    assert _sample(scraped, 'gossip_membership_events_total{event="joins",node="0"}') == summary["membership"]["joins"]
    assert 1 <= _sample(scraped, 'gossip_membership_view_size{node="0"}') <= 8
    assert _sample(scraped, 'gossip_messages_rejected_total{node="0",reason="too_many_members"}') == 50
    assert _sample(scraped, 'gossip_messages_rejected_total{node="0",reason="join_flood"}') >= FLOOD // 2


def _sample(text: str, series: str) -> float:
    """The value of one series in a Prometheus text exposition."""
    for line in text.splitlines():
        if line.startswith(series + " "):
            return float(line.split()[-1])
    raise AssertionError(f"{series} not exported")


def _alive(proc: subprocess.Popen[bytes]) -> None:
    assert proc.poll() is None, proc.stderr.read().decode()[-2000:] if proc.stderr else ""
