"""``gossip launch`` on one machine moves models through shared memory: the same models as TCP, refusals counted,
and nothing left behind by a crash or Ctrl-C."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from gossip.config import load_config
from gossip.net.rings import MIN_SLOTS, Geometry
from gossip.net.shm import ring_socket_name
from gossip.node.plan import HEADER_SLACK_BYTES, run_id_of
from gossip.results.rundir import read_jsonl
from tests.conftest import cli_env, run_gossip
from tests.procs import dev_shm_names, node_pids

pytestmark = [pytest.mark.slow, pytest.mark.e2e]

PEER_SCRIPT = (Path(__file__).parents[1] / "integration" / "shm_peer.py").read_text()
# a model of 303k parameters (1.2 MB): large enough for the ring (shm.MIN_BYTES), small enough to train fast
RUN = ("-n", "4", "-t", "ring", "--seed", "3", "--no-progress", "--no-report", "--dataset", "synthetic")
RUN += ("--set", "data.features=1000", "--set", "model.hidden=[300]")


def _summaries(run_dir: Path) -> list[dict]:
    return [json.loads((run_dir / "nodes" / f"node-{i}.json").read_text()) for i in range(4)]


def test_a_run_through_shared_memory_ends_with_the_same_models_bit_for_bit_as_one_through_tcp(tmp_path: Path) -> None:
    """Same seed, same config: every node's final model hash is the same whether models crossed in shared memory
    (found by itself: nothing configured) or over loopback TCP (``--no-shared-memory``)."""
    shm, tcp = tmp_path / "shm", tmp_path / "tcp"
    for run_dir, extra in ((shm, ()), (tcp, ("--no-shared-memory",))):
        result = run_gossip("launch", "--run-dir", str(run_dir), *RUN, "-r", "15", *extra, timeout=300)
        assert result.returncode == 0, result.stderr[-3000:]
    through_rings, through_tcp = _summaries(shm), _summaries(tcp)
    assert [s["model_hash"] for s in through_rings] == [s["model_hash"] for s in through_tcp]
    assert all(s["shared_memory"] == {"sent": 30, "received": 30} for s in through_rings)  # 15 rounds × 2 neighbours
    assert all(s["shared_memory"] == {"sent": 0, "received": 0} for s in through_tcp)


def _ring_inodes(pid: int) -> set[str]:
    """The inodes of the rings a process maps (``/memfd:gossip-ring (deleted)`` lines of its maps)."""
    try:
        maps = Path(f"/proc/{pid}/maps").read_text()
    except OSError:
        return set()
    return {line.split()[4] for line in maps.splitlines() if "memfd:gossip-ring" in line}


def _anyone_maps(inodes: set[str]) -> bool:
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit() and _ring_inodes(int(entry.name)) & inodes:
            return True
    return False


def test_hostile_offers_are_counted_and_a_crash_and_ctrl_c_leave_no_ring_behind(tmp_path: Path) -> None:
    """A running node refuses rings a local process offers and counts them (``bad_slot``); a node SIGKILLed mid-run
    and a Ctrl-C of the launcher leave no segment in /dev/shm and no ring mapped by any process."""
    run_dir = tmp_path / "run"
    dev_shm = dev_shm_names()
    launcher = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "gossip",
            "launch",
            "--run-dir",
            str(run_dir),
            *RUN,
            "-r",
            "100000",
            "--keep-going",
            "--set",
            "transport.round_timeout_s=2",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=cli_env(),
        start_new_session=True,
    )
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and len(read_jsonl(run_dir / "nodes" / "node-0.jsonl")) < 3:
            time.sleep(0.2)
        pids = node_pids(run_dir)
        inodes = {pid: _ring_inodes(pid) for pid in pids.values()}
        assert all(len(found) == 3 for found in inodes.values()), inodes  # its own ring and its two neighbours'
        assert dev_shm_names() == dev_shm

        cfg = load_config(run_dir / "config.toml")
        geometry = Geometry(MIN_SLOTS, _model_bytes(run_dir))
        offers = ["another_run", "not_a_neighbour", "unsealed", "another_shape"]
        args = {
            "name": ring_socket_name(run_id_of(cfg), 0, cfg.transport.address_of(0)).hex(),
            "run_id": run_id_of(cfg).hex(),
            "src": 1,
            "dst": 0,
            "slots": MIN_SLOTS,
            "slot_bytes": geometry.slot_bytes,
            "size": geometry.size,
            "cases": offers,
        }
        peer = subprocess.run([sys.executable, "-c", PEER_SCRIPT, "offers", json.dumps(args)], capture_output=True, text=True, timeout=30)
        assert json.loads(peer.stdout) == dict.fromkeys(offers, "00"), peer.stderr

        os.kill(pids[1], signal.SIGKILL)  # a crash: its neighbours carry on after their round timeout
        reached = len(read_jsonl(run_dir / "nodes" / "node-0.jsonl"))
        while time.monotonic() < deadline and len(read_jsonl(run_dir / "nodes" / "node-0.jsonl")) < reached + 2:
            time.sleep(0.2)
        launcher.send_signal(signal.SIGINT)
        _out, err = launcher.communicate(timeout=60)
    finally:
        if launcher.poll() is None:
            os.killpg(launcher.pid, signal.SIGKILL)
            launcher.communicate()
    assert launcher.returncode == 130, err[-3000:]
    assert node_pids(run_dir) == {}
    assert not _anyone_maps(set().union(*inodes.values()))
    assert dev_shm_names() == dev_shm
    node0 = json.loads((run_dir / "nodes" / "node-0.json").read_text())
    assert node0["rejected"].get("bad_slot", 0) >= len(offers), node0["rejected"]
    assert node0["shared_memory"]["received"] > 0


def _model_bytes(run_dir: Path) -> int:
    """The model's float32 bytes: the slot size a node of this run expects."""
    from gossip.node.plan import message_limit, plan_node

    return message_limit(plan_node(load_config(run_dir / "config.toml"), 0)) - HEADER_SLACK_BYTES
