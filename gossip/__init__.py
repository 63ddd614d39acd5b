"""gossip: decentralized learning on real processes.

Every node is an OS process that trains a PyTorch model on its own data and exchanges models with
its neighbours over ZeroMQ, following a NetworkX topology. No parameter server, no coordinator.

The curated public API is below (pinned by ``tests/unit/test_public_api.py``); everything else is
internal and may change.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from gossip.algorithms import DSGD, Aggregator, weighted_average
    from gossip.config import RunConfig, config_to_toml, load_config
    from gossip.data import Dataset, load_dataset, partition
    from gossip.errors import (
        ConfigError,
        DataError,
        GossipError,
        PeerUnreachable,
        RejectReason,
        TopologyError,
        TransportError,
        WireError,
    )
    from gossip.ids import NodeId
    from gossip.learn.flat import FlatModel, flatten_, model_hash
    from gossip.learn.models import build_model
    from gossip.net.transport import InMemoryNetwork, InMemoryTransport, Transport
    from gossip.net.wire import Kind, Message, decode, encode
    from gossip.net.zeromq import ZmqTransport
    from gossip.node.node import Node
    from gossip.node.plan import NodePlan, plan_node
    from gossip.node.records import NodeResult
    from gossip.run.launch import LaunchResult, launch
    from gossip.topology import Topology, generate, load, parse_spec

# Where each public name lives. Imported on first use (PEP 562): a node process that imports
# gossip.node.node should not also pay for the launcher, YAML and NetworkX just because they are exported here.
_EXPORTS = {
    "gossip.algorithms": ("DSGD", "Aggregator", "weighted_average"),
    "gossip.config": ("RunConfig", "config_to_toml", "load_config"),
    "gossip.data": ("Dataset", "load_dataset", "partition"),
    "gossip.errors": (
        "ConfigError",
        "DataError",
        "GossipError",
        "PeerUnreachable",
        "RejectReason",
        "TopologyError",
        "TransportError",
        "WireError",
    ),
    "gossip.ids": ("NodeId",),
    "gossip.run.launch": ("LaunchResult", "launch"),
    "gossip.learn.models": ("build_model",),
    "gossip.node.node": ("Node",),
    "gossip.node.records": ("NodeResult",),
    "gossip.node.plan": ("NodePlan", "plan_node"),
    "gossip.learn.flat": ("FlatModel", "flatten_", "model_hash"),
    "gossip.topology": ("Topology", "generate", "load", "parse_spec"),
    "gossip.net.transport": ("InMemoryNetwork", "InMemoryTransport", "Transport"),
    "gossip.net.zeromq": ("ZmqTransport",),
    "gossip.net.wire": ("Kind", "Message", "decode", "encode"),
}
_WHERE = {name: module for module, names in _EXPORTS.items() for name in names}


def __getattr__(name: str) -> Any:
    module = _WHERE.get(name)
    if module is None:
        raise AttributeError(f"module 'gossip' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value  # the next lookup is a plain module attribute
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *_WHERE})


__version__ = "0.1.0"

__all__ = [
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
    "Topology",
    "TopologyError",
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
]
