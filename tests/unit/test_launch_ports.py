"""Port picking for a local run: node and metrics ports never coincide."""

from __future__ import annotations

import importlib

launch = importlib.import_module("gossip.launch")  # the package re-exports a function of the same name


def test_picked_ports_avoid_the_ones_already_picked_for_the_run(monkeypatch) -> None:
    """Ports picked but not yet bound still test free: metrics ports must skip the node ports picked just before."""
    monkeypatch.setattr(launch, "_ephemeral_range", lambda: (1100, 60999))  # candidates 1024..1099 only
    node_ports = launch._ports("127.0.0.1", 30, None, "node")
    metrics_ports = launch._ports("127.0.0.1", 30, None, "metrics", avoid=set(node_ports))
    assert not set(node_ports) & set(metrics_ports)
    assert len(set(metrics_ports)) == 30
