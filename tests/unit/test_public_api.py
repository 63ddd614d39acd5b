"""The public API is curated: ``gossip.__all__`` is exactly what we mean to export."""

from __future__ import annotations

import gossip

EXPECTED = {
    "DSGD", "Aggregator", "ConfigError", "DataError", "Dataset", "FlatModel", "GossipError", "InMemoryNetwork",
    "InMemoryTransport", "Kind", "LaunchResult", "Message", "Node", "NodeId", "NodePlan", "NodeResult",
    "PeerUnreachable", "RejectReason", "RunConfig", "TopologyError", "Topology", "Transport", "TransportError",
    "WireError", "ZmqTransport", "build_model", "config_to_toml", "decode", "encode", "flatten_", "generate",
    "launch", "load", "load_config", "load_dataset", "model_hash", "parse_spec", "partition", "plan_node",
    "weighted_average",
}


def test_all_is_the_curated_set() -> None:
    """Adding or removing a public name is a deliberate change to this list."""
    assert set(gossip.__all__) == EXPECTED


def test_every_exported_name_exists() -> None:
    """Nothing in __all__ is a dangling name."""
    for name in gossip.__all__:
        assert hasattr(gossip, name), name
