"""gossip: decentralized learning on real processes.

Every node is an OS process that trains a PyTorch model on its own data and exchanges models with
its neighbours over ZeroMQ, following a NetworkX topology. No parameter server, no coordinator.

The packages follow a run's data flow, and imports only go down this map (``lint-imports`` checks it):

    cli/  __main__.py    the console script (also ``python -m gossip``): parse, load the config, hand over
    config_reference.py the configuration reference page, generated from config/
    run/                many processes: prepare, launch and supervise; fork server; simulator; deploy
    node/               one process: plan, send path, receiver, peers, mixer, records, drivers, daemon
    net/  algorithms/  ops/
                        how a model travels | how arrivals are combined | what a run exposes live
    results/            what a run leaves behind: run directory, typed summaries, report
    learn/  topology/  data/
                        how a node learns alone | who talks to whom | what each node learns from
    config/             what a run is: frozen, validated sections
    inputs.py  plugins.py
                        reading a file a user points at, within caps | a rule or attack by import path
    errors.py  ids.py  seeds.py  exports.py  addresses.py
                        the exception tree and exit codes, node ids, named seeds, lazy re-exports,
                        the addresses an open network lets a node dial

The public API below is grouped by what a user does with it (pinned by ``tests/unit/test_public_api.py``).
Each subpackage exports more for those who work inside it (its ``__all__``, pinned by the same test): the
wire format's ``Kind``/``Message``/``encode``/``decode`` live in :mod:`gossip.net`, for instance.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from gossip.algorithms import (
        DSGD,
        Aggregator,
        Balance,
        ClippedGossip,
        CoordinateMedian,
        InPlaceAggregator,
        Krum,
        TrimmedMean,
        VarianceCorrected,
        build_aggregator,
        weighted_average,
    )
    from gossip.algorithms.attacks import Attack
    from gossip.config import RunConfig, config_to_toml, configure, load_config
    from gossip.data import Dataset, load_dataset
    from gossip.data.partition import partition
    from gossip.errors import (
        ConfigError,
        DataError,
        ExitCode,
        GossipError,
        PeerUnreachable,
        RunDirError,
        TopologyError,
        TransportError,
        UsageError,
        WireError,
    )
    from gossip.ids import NodeId
    from gossip.learn.flat import FlatModel
    from gossip.learn.models import build_model
    from gossip.net.transport import InMemoryNetwork, InMemoryTransport, Transport
    from gossip.net.zeromq import ZmqTransport
    from gossip.node.byzantine import build_node
    from gossip.node.node import Node
    from gossip.node.plan import NodePlan, plan_node
    from gossip.node.records import NodeResult
    from gossip.results.records import RoundRecord, RunRecords
    from gossip.results.report import load_run, write_report
    from gossip.results.summary import NodeSummary, RunSummary
    from gossip.run.experiment import ExperimentResult, experiment
    from gossip.run.launch import LaunchResult, launch, resume
    from gossip.run.simulate import SimulationResult, simulate
    from gossip.topology import Topology, generate, load, parse_spec

# Where each public name lives, by what a user does. Imported on first use (PEP 562): ``import gossip``
# imports no submodule, so a node process does not pay for the launcher, YAML and NetworkX. (The
# subpackages use gossip.exports for the same; importing it here would import a submodule.)
_EXPORTS = {
    # run an experiment
    "gossip.config": ("RunConfig", "config_to_toml", "configure", "load_config"),
    "gossip.run.experiment": ("ExperimentResult", "experiment"),
    "gossip.results.records": ("RoundRecord", "RunRecords"),
    "gossip.run.launch": ("LaunchResult", "launch", "resume"),
    "gossip.run.simulate": ("SimulationResult", "simulate"),
    "gossip.results.report": ("load_run", "write_report"),
    "gossip.results.summary": ("NodeSummary", "RunSummary"),
    "gossip.topology": ("Topology", "generate", "load", "parse_spec"),
    "gossip.data": ("Dataset", "load_dataset", "partition"),
    "gossip.learn.models": ("build_model",),
    # write an algorithm
    "gossip.algorithms": (
        "DSGD",
        "Aggregator",
        "Balance",
        "ClippedGossip",
        "CoordinateMedian",
        "InPlaceAggregator",
        "Krum",
        "TrimmedMean",
        "VarianceCorrected",
        "build_aggregator",
        "weighted_average",
    ),
    "gossip.algorithms.attacks": ("Attack",),
    # embed a node
    "gossip.node.node": ("Node",),
    "gossip.node.plan": ("NodePlan", "plan_node"),
    "gossip.node.records": ("NodeResult",),
    "gossip.node.byzantine": ("build_node",),
    "gossip.net.transport": ("InMemoryNetwork", "InMemoryTransport", "Transport"),
    "gossip.net.zeromq": ("ZmqTransport",),
    "gossip.learn.flat": ("FlatModel",),
    "gossip.ids": ("NodeId",),
    # errors: the whole tree, and the exit codes they map to
    "gossip.errors": (
        "ConfigError",
        "DataError",
        "ExitCode",
        "GossipError",
        "PeerUnreachable",
        "RunDirError",
        "TopologyError",
        "TransportError",
        "UsageError",
        "WireError",
    ),
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
    "Attack",
    "Balance",
    "ClippedGossip",
    "ConfigError",
    "CoordinateMedian",
    "DataError",
    "Dataset",
    "ExitCode",
    "ExperimentResult",
    "FlatModel",
    "GossipError",
    "InMemoryNetwork",
    "InMemoryTransport",
    "InPlaceAggregator",
    "Krum",
    "LaunchResult",
    "Node",
    "NodeId",
    "NodePlan",
    "NodeResult",
    "NodeSummary",
    "PeerUnreachable",
    "RoundRecord",
    "RunConfig",
    "RunDirError",
    "RunRecords",
    "RunSummary",
    "SimulationResult",
    "Topology",
    "TopologyError",
    "Transport",
    "TransportError",
    "TrimmedMean",
    "UsageError",
    "VarianceCorrected",
    "WireError",
    "ZmqTransport",
    "build_aggregator",
    "build_model",
    "build_node",
    "config_to_toml",
    "configure",
    "experiment",
    "generate",
    "launch",
    "load",
    "load_config",
    "load_dataset",
    "load_run",
    "parse_spec",
    "partition",
    "plan_node",
    "resume",
    "simulate",
    "weighted_average",
    "write_report",
]
