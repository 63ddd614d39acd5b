"""The public API is curated: ``gossip.__all__`` is exactly what we mean to export."""

from __future__ import annotations

import gossip

EXPECTED = {
    "DSGD",
    "Aggregator",
    "ConfigError",
    "DataError",
    "Dataset",
    "FlatModel",
    "GossipError",
    "InMemoryNetwork",
    "InMemoryTransport",
    "Kind",
    "LaunchResult",
    "Message",
    "Node",
    "NodeId",
    "NodePlan",
    "NodeResult",
    "PeerUnreachable",
    "RejectReason",
    "RunConfig",
    "TopologyError",
    "Topology",
    "Transport",
    "TransportError",
    "WireError",
    "ZmqTransport",
    "build_model",
    "config_to_toml",
    "decode",
    "encode",
    "flatten_",
    "generate",
    "launch",
    "load",
    "load_config",
    "load_dataset",
    "model_hash",
    "parse_spec",
    "partition",
    "plan_node",
    "weighted_average",
}


def test_all_is_the_curated_set() -> None:
    """Adding or removing a public name is a deliberate change to this list."""
    assert set(gossip.__all__) == EXPECTED


def test_every_exported_name_exists() -> None:
    """Nothing in __all__ is a dangling name."""
    for name in gossip.__all__:
        assert hasattr(gossip, name), name


def test_exports_are_imported_on_first_use() -> None:
    """``import gossip`` imports no submodule; a name is imported when first read (a node process must not pay for the launcher)."""
    import subprocess
    import sys

    code = (
        "import sys, gossip\n"
        "print(sorted(m for m in sys.modules if m.startswith('gossip.')))\n"
        "gossip.Topology, gossip.plan_node\n"
        "print(sorted(m for m in ('networkx', 'yaml', 'gossip.run.launch', 'gossip.node.plan') if m in sys.modules))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.splitlines()
    assert out == ["[]", "['gossip.node.plan']"]
    assert set(dir(gossip)) >= set(gossip.__all__)
