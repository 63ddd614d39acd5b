"""Port picking for a local run: node and metrics ports never coincide."""

from __future__ import annotations

import dataclasses

from gossip.run import ports


def test_picked_ports_avoid_the_ones_already_picked_for_the_run(monkeypatch) -> None:
    """Ports picked but not yet bound still test free: metrics ports must skip the node ports picked just before."""
    monkeypatch.setattr(ports, "ephemeral_range", lambda: (1100, 60999))  # candidates 1024..1099 only
    node_ports = ports.pick_ports("127.0.0.1", 30, None, "node")
    metrics_ports = ports.pick_ports("127.0.0.1", 30, None, "metrics", avoid=set(node_ports))
    assert not set(node_ports) & set(metrics_ports)
    assert len(set(metrics_ports)) == 30


def test_resume_of_an_ipc_run_waits_for_no_port() -> None:
    """An ipc run's node addresses have no port: waiting for the run's ports to be free passes over them."""
    from gossip.config import load_config

    cfg = load_config(env={}, overrides={"run.nodes": 3, "transport.address_template": "ipc://", "metrics.enabled": False})
    cfg = dataclasses.replace(cfg, transport=dataclasses.replace(cfg.transport, addresses=ports.ipc_addresses(3)))
    ports.wait_ports_free(cfg, 3, timeout_s=0.1)
