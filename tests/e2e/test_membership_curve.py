"""An open network with CURVE: members whose public keys are in the allow-list join; a stranger cannot.

The allow-list is the public key files of ``[security] keys_dir`` (what ``gossip keys`` writes). Two members share one
such directory; a stranger has a key pair of its own and the first member's public key, so it can dial, but its key is
in nobody's allow-list: its handshake is refused (counted ``unauthenticated``) and it gives up after the join timeout.
"""

from __future__ import annotations

import json
import shutil
import signal
import subprocess
from pathlib import Path

import pytest

from tests.conftest import Processes, free_port, run_gossip
from tests.waiting import wait_until

pytestmark = [pytest.mark.slow, pytest.mark.e2e]

SETS = {
    "membership.enabled": "true",
    "membership.join_timeout_s": "6",
    "training.mode": "async",
    "training.rounds": "1000000",
    "training.period_s": "0.1",
    "data.dataset": "digits",
    "model.name": "logreg",
    "run.nodes": "4",
    "metrics.enabled": "false",
    "security.curve": "true",
}


def _node(processes: Processes, run_dir: Path, keys: Path, node: int, address: str, *join: str) -> subprocess.Popen[bytes]:
    sets = [x for k, v in {**SETS, "security.keys_dir": str(keys)}.items() for x in ("--set", f"{k}={v}")]
    return processes.gossip(
        "node", "--id", str(node), "--address", address, "--run-dir", str(run_dir), *sets, *join, stderr=subprocess.PIPE
    )  # fmt: skip


def test_allowed_keys_join_and_a_stranger_is_refused(tmp_path: Path, processes: Processes) -> None:
    """Member 1 (allowed) joins member 0 and starts from its model; stranger 5 is refused at the handshake, counted by
    member 0, and exits 1 with one line."""
    assert run_gossip("keys", "--nodes", "4", "--out", str(tmp_path / "keys")).returncode == 0
    assert run_gossip("keys", "--nodes", "6", "--out", str(tmp_path / "own")).returncode == 0
    stranger_keys = tmp_path / "stranger"
    stranger_keys.mkdir()
    for name in ("node-5.key", "node-5.key_secret"):
        shutil.copy(tmp_path / "own" / name, stranger_keys / name)
    shutil.copy(tmp_path / "keys" / "node-0.key", stranger_keys / "node-0.key")  # it knows whom it dials
    run_dir = tmp_path / "run"
    first = f"tcp://127.0.0.1:{free_port()}"
    member0 = _node(processes, run_dir, tmp_path / "keys", 0, first)
    member1 = _node(processes, run_dir, tmp_path / "keys", 1, f"tcp://127.0.0.1:{free_port()}", "--join", f"0@{first}")
    records = run_dir / "nodes" / "node-1.jsonl"
    wait_until(lambda: records.exists() and records.stat().st_size > 0, timeout_s=90, what="member 1 joins and trains")
    # the stranger gives up sooner than the members: its refusal is one handshake, not a join under load
    quick = ("--set", "membership.join_timeout_s=3", "--join", f"0@{first}")
    stranger = _node(processes, tmp_path / "stranger-run", stranger_keys, 5, f"tcp://127.0.0.1:{free_port()}", *quick)
    _out, err = stranger.communicate(timeout=90)
    for member in (member0, member1):
        member.send_signal(signal.SIGTERM)
        member.communicate(timeout=60)
    assert stranger.returncode == 1
    assert err.decode().strip().splitlines()[-1] == f"gossip: error: node 5: no member answered at {first} within 3 s"
    summary0 = json.loads((run_dir / "nodes" / "node-0.json").read_text())
    summary1 = json.loads((run_dir / "nodes" / "node-1.json").read_text())
    assert summary0["rejected"].get("unauthenticated", 0) >= 1
    assert summary1["membership"]["synced_from"] == [0]
    assert 5 not in summary0["membership"]["view"]


def test_curve_needs_the_contacts_id(tmp_path: Path) -> None:
    """With CURVE, ``--join`` without the contact's id is refused in one line: its public key cannot be chosen."""
    assert run_gossip("keys", "--nodes", "2", "--out", str(tmp_path / "keys")).returncode == 0
    sets = [x for k, v in {**SETS, "security.keys_dir": str(tmp_path / "keys")}.items() for x in ("--set", f"{k}={v}")]
    done = run_gossip("node", "--id", "1", "--address", "tcp://127.0.0.1:7101", "--join", "tcp://127.0.0.1:7100", *sets)
    assert done.returncode == 2
    assert done.stderr.strip().splitlines() == [
        "gossip: error: --join: with [security] curve the contact's id is needed for its public key: --join ID@tcp://HOST:PORT"
    ]
