"""The public API is curated: ``gossip.__all__`` and each subpackage's ``__all__`` are exactly what we mean to export."""

from __future__ import annotations

import importlib
import re
import subprocess
import sys
from pathlib import Path

import pytest

import gossip

EXPECTED = {
    "Aggregator",
    "Attack",
    "Balance",
    "ClippedGossip",
    "ConfigError",
    "CoordinateMedian",
    "DSGD",
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
}

SUBPACKAGES = {
    "gossip.algorithms": [
        "Aggregator",
        "Balance",
        "ClippedGossip",
        "CoordinateMedian",
        "DSGD",
        "InPlaceAggregator",
        "Krum",
        "TrimmedMean",
        "VarianceCorrected",
        "build_aggregator",
        "layer_segments",
        "layer_variance",
        "weighted_average",
    ],
    "gossip.config": [
        "AggregationConfig",
        "ByzantineConfig",
        "CompressionConfig",
        "DataConfig",
        "FaultsConfig",
        "LinksConfig",
        "MAX_NODES",
        "MAX_SEED",
        "MembershipConfig",
        "MergeConfig",
        "MetricsConfig",
        "ModelConfig",
        "RunConfig",
        "RunSection",
        "ScheduleConfig",
        "SecurityConfig",
        "TopologyConfig",
        "TrainingConfig",
        "TransportConfig",
        "VarianceConfig",
        "check_link_value",
        "check_path_text",
        "config_to_toml",
        "configure",
        "load_config",
        "share_of",
    ],
    "gossip.data": [
        "DATASET_NAMES",
        "Dataset",
        "DatasetLoader",
        "PARTITION_SCHEMES",
        "Partition",
        "TorchData",
        "label_histogram",
        "load_dataset",
        "load_npz",
        "load_part",
        "partition",
        "partition_key",
        "save_npz",
        "save_parts",
    ],
    "gossip.learn": [
        "BatchOrder",
        "Evaluation",
        "FlatModel",
        "FlatOptimizer",
        "Layout",
        "LocalTrainer",
        "StepResult",
        "apply_update_",
        "build_model",
        "flatten_",
        "model_hash",
        "model_names",
        "model_of",
        "parameter_count",
    ],
    "gossip.net": [
        "InMemoryNetwork",
        "InMemoryTransport",
        "Kind",
        "Message",
        "Received",
        "Transport",
        "ZmqTransport",
        "decode",
        "encode",
        "generate_keys",
        "load_keys",
    ],
    "gossip.node": [
        "ByzantineNode",
        "Node",
        "NodePlan",
        "NodeResult",
        "build_node",
        "plan_node",
        "run_node",
    ],
    "gossip.ops": [
        "MetricsServer",
        "NodeMetrics",
    ],
    "gossip.results": [
        "NodeFiles",
        "NodeSummary",
        "RoundRecord",
        "RunData",
        "RunRecords",
        "RunSummary",
        "load_run",
        "write_report",
    ],
    "gossip.run": [
        "ExperimentResult",
        "LaunchResult",
        "SimulationResult",
        "prepare_run",
        "resume",
    ],
    "gossip.topology": [
        "DESCRIBE_MAX_NODES",
        "JSON_FORMAT",
        "KINDS",
        "MAX_DEPTH",
        "MAX_EDGES",
        "MAX_FILE_BYTES",
        "MAX_NODES",
        "Topology",
        "WEIGHT_KINDS",
        "describe",
        "draw",
        "generate",
        "load",
        "parse_spec",
        "save",
        "topology_of",
    ],
}


def test_all_is_the_curated_set() -> None:
    """Adding or removing a public name is a deliberate change to this list."""
    assert set(gossip.__all__) == EXPECTED


def test_every_exported_name_exists() -> None:
    """Nothing in __all__ is a dangling name."""
    for name in gossip.__all__:
        assert hasattr(gossip, name), name


@pytest.mark.parametrize("package", sorted(SUBPACKAGES))
def test_each_subpackage_exports_its_curated_set(package: str) -> None:
    """A subpackage's ``__all__`` is pinned too, and every name in it resolves."""
    module = importlib.import_module(package)
    assert sorted(module.__all__) == SUBPACKAGES[package]
    for name in module.__all__:
        assert getattr(module, name) is not None, name


def test_every_package_on_the_map_exists() -> None:
    """The map in ``gossip/__init__.py``'s docstring names only packages and modules that exist, and every one that exists."""
    root = Path(gossip.__file__).parent
    doc = (gossip.__doc__ or "").split("this map")[1].split("The public API")[0]
    named = set(re.findall(r"\b([a-z_]+)/", doc)) | {m.removesuffix(".py") for m in re.findall(r"\b([a-z_]+\.py)\b", doc)}
    on_disk = {p.name for p in root.iterdir() if p.is_dir() and (p / "__init__.py").exists()}
    on_disk |= {p.stem for p in root.glob("*.py") if p.stem != "__init__"}
    assert named == on_disk


def test_exports_are_imported_on_first_use() -> None:
    """``import gossip`` imports no submodule; a name is imported when first read (a node process must not pay for the launcher)."""
    code = (
        "import sys, gossip\n"
        "print(sorted(m for m in sys.modules if m.startswith('gossip.')))\n"
        "gossip.Topology, gossip.plan_node\n"
        "print(sorted(m for m in ('networkx', 'yaml', 'gossip.run.launch', 'gossip.node.plan') if m in sys.modules))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.splitlines()
    assert out == ["[]", "['gossip.node.plan']"]
    assert set(dir(gossip)) >= set(gossip.__all__)


def test_a_subpackage_imports_its_public_names_on_first_use() -> None:
    """Importing the node daemon (what ``gossip node --help`` needs) does not import the node, torch or the launcher."""
    code = (
        "import sys, gossip.node.daemon\nprint(sorted(m for m in ('torch', 'gossip.node.node', 'gossip.run.launch') if m in sys.modules))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.splitlines()
    assert out == ["[]"]
