"""Multi-host on one machine: nodes in separate network namespaces, joined by veth pairs to a bridge.

Each node is a real ``gossip node`` process started with ``ip netns exec`` in its own namespace, with its
own 10.77.0.x address and nothing else but loopback: a neighbour's model can only arrive over the veth
and the bridge. Peers are named ``node-<i>`` (per-namespace /etc/hosts), exactly as on the compose
network, and the config is the one ``gossip deploy compose`` renders. This is the base the fault tests
(loss, bandwidth, partitions) build on — see tests/netns.py.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from gossip.config import load_config
from gossip.node import checkpoint
from gossip.results.rundir import read_jsonl
from gossip.run.deploy import prepare
from gossip.run.deploy.compose import compose_address_template
from tests.conftest import Processes
from tests.netns import NETNS_ETC, Fabric, remove_stale

pytestmark = [pytest.mark.slow, pytest.mark.e2e, pytest.mark.netns]

HOSTS = 4
ROUNDS = 8


def _require_netns() -> None:
    if os.geteuid() != 0:
        pytest.fail("network namespaces need root (CI runs .ci/run as root)")
    if shutil.which("ip") is None:
        pytest.fail("iproute2 is missing: run `bash deploy/system-deps.sh`")


def _tx_bytes(net: Fabric, i: int) -> int:
    out = net.run(i, "cat", f"/sys/class/net/{net.host_iface}/statistics/tx_bytes").stdout
    return int(out)


def _http_from(net: Fabric, i: int, url: str) -> tuple[int, str]:
    """GET ``url`` from inside host ``i`` (so over the fabric): (status, body)."""
    code = (
        "import sys, urllib.request, urllib.error\n"
        "try:\n"
        f"    r = urllib.request.urlopen({url!r}, timeout=5); print(r.status); print(r.read().decode())\n"
        "except urllib.error.HTTPError as e:\n"
        "    print(e.code); print(e.read().decode())\n"
    )
    out = net.run(i, sys.executable, "-c", code).stdout
    status, _, body = out.partition("\n")
    return int(status), body


def test_nodes_in_separate_namespaces_train_to_completion(tmp_path: Path, processes: Processes) -> None:
    """A 4-node ring across 4 namespaces trains every round with every model arriving; each node's eth0 carried
    at least the bytes it sent; /metrics and /readyz answer across the bridge while the nodes hold; SIGTERM
    ends each with exit 0 and a checkpoint; every namespace and /etc/netns entry is gone afterwards."""
    _require_netns()
    remove_stale()
    cfg = load_config(
        env={}, overrides={"run.nodes": HOSTS, "topology.spec": "ring", "training.rounds": ROUNDS, "transport.startup_timeout_s": 60}
    )
    run = prepare(cfg, compose_address_template())
    (tmp_path / "config.toml").write_text(run.config_toml)
    (tmp_path / "topology.json").write_text(run.topology_json)
    run_dir = tmp_path / "run"
    logs = {}

    net = Fabric(HOSTS)
    with net:
        procs = []
        for i in range(HOSTS):
            logs[i] = tmp_path / f"node-{i}.log"
            args = [
                sys.executable,
                "-m",
                "gossip",
                "node",
                "--config",
                str(tmp_path / "config.toml"),
                "--id",
                str(i),
                "--run-dir",
                str(run_dir),
                "--set",
                f"topology.spec={tmp_path / 'topology.json'}",
                "--hold",
                "forever",
            ]
            with open(logs[i], "wb") as log:
                procs.append(processes.start(net.command(i, args), stdout=log, stderr=subprocess.STDOUT))

        def tail() -> str:
            return "\n".join(f"--- node {i}\n" + logs[i].read_text()[-1500:] for i in logs)

        summaries = [run_dir / "nodes" / f"node-{i}.json" for i in range(HOSTS)]
        deadline = time.monotonic() + 240
        while time.monotonic() < deadline and not all(s.exists() for s in summaries):
            assert all(p.poll() is None for p in procs), f"a node exited early:\n{tail()}"
            time.sleep(0.5)
        assert all(s.exists() for s in summaries), f"nodes did not finish in 240 s:\n{tail()}"

        for i in range(HOSTS):
            peer = (i + 1) % HOSTS  # ask a neighbour's endpoint from here: the request crosses the bridge
            status, _ = _http_from(net, i, f"http://node-{peer}:9100/readyz")
            assert status == 200
            status, metrics = _http_from(net, i, f"http://{net.address(peer)}:9100/metrics")
            assert status == 200
            assert re.search(rf'^gossip_rounds_total\{{node="{peer}"\}} {ROUNDS}\.0$', metrics, re.M), metrics[:500]

        for i, p in enumerate(procs):
            summary = json.loads(summaries[i].read_text())
            assert _tx_bytes(net, i) >= summary["bytes_sent"] > 0
            p.send_signal(signal.SIGTERM)
        for p in procs:
            assert p.wait(timeout=60) == 0, tail()

    assert net.exists() == [] and not any((NETNS_ETC / net.ns(i)).exists() for i in range(HOSTS))
    for i in range(HOSTS):
        text = logs[i].read_text()
        assert "listening on tcp://0.0.0.0:7000" in text
        records = read_jsonl(run_dir / "nodes" / f"node-{i}.jsonl")
        assert [r["round"] for r in records] == list(range(ROUNDS))
        assert all(r["arrived"] == 2 and r["missing"] == [] for r in records), records
        summary = json.loads(summaries[i].read_text())
        assert summary["status"] == "finished"
        assert checkpoint.load(run_dir / "nodes" / f"node-{i}.ckpt.npz").round == ROUNDS


def test_a_fabric_is_removed_even_when_the_body_fails() -> None:
    """The context manager deletes every namespace it made when the code inside raises."""
    _require_netns()
    net = Fabric(2, tag=f"gt{os.getpid()}x")
    with pytest.raises(RuntimeError, match="boom"), net:
        assert len(net.exists()) == 3  # two hosts and the switch
        assert f"inet {net.address(0)}/24" in net.run(0, "ip", "-4", "addr", "show", net.host_iface).stdout
        raise RuntimeError("boom")
    assert net.exists() == []
