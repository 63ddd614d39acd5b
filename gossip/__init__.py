"""gossip: decentralized learning on real processes.

Every node is an OS process that trains a PyTorch model on its own data and exchanges models with
its neighbours over ZeroMQ, following a NetworkX topology. No parameter server, no coordinator.

The curated public API is below (pinned by ``tests/unit/test_public_api.py``); everything else is
internal and may change.
"""

from gossip.aggregation import DSGD, Aggregator, weighted_average
from gossip.config import RunConfig, config_to_toml, load_config
from gossip.data import Dataset, load_dataset, partition
from gossip.errors import (
    ConfigError,
    DataError,
    GossipError,
    PeerUnreachable,
    TopologyError,
    TransportError,
    WireError,
)
from gossip.ids import NodeId
from gossip.launch import LaunchResult, launch
from gossip.models import build_model
from gossip.node import Node, NodePlan, NodeResult, plan_node
from gossip.state import FlatModel, flatten_, model_hash
from gossip.topology import Topology, generate, load, parse_spec
from gossip.transport import InMemoryNetwork, InMemoryTransport, Transport, ZmqTransport
from gossip.wire import Kind, Message, RejectReason, decode, encode

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
]
