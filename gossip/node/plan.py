"""What a node is given before it starts: its plan (config, topology, data, checkpoint), read from disk, and its model.

:func:`plan_node` does the reading; everything else here is a pure function of the plan, so the daemon can
size its sockets (:func:`message_limit`) and the simulation build the same models (:func:`build_flat_model`).
"""

from __future__ import annotations

import dataclasses
import hashlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from gossip.config import MAX_NODES, RunConfig, config_to_toml
from gossip.data import Dataset, load_npz, load_part
from gossip.data.source import node_dataset
from gossip.data.split import shard_key, split_training_set
from gossip.errors import ConfigError
from gossip.ids import NodeId
from gossip.learn.device import check_gpu_features, resolve_device
from gossip.learn.flat import FlatModel, flatten_
from gossip.learn.models import model_of
from gossip.node import checkpoint
from gossip.results.rundir import NodeFiles
from gossip.seeds import init_seed
from gossip.topology import Topology, topology_of

__all__ = ["HEADER_SLACK_BYTES", "NodePlan", "build_flat_model", "message_limit", "plan_node", "run_id_of"]

HEADER_SLACK_BYTES = 8192


def run_id_of(cfg: RunConfig) -> bytes:
    """8 bytes naming the learning problem, so nodes of different runs never mix models.

    Derived from the sections every node must agree on (not from addresses or ports, which differ
    per node in a container deployment), so N independently started daemons agree without talking. A node's
    device and GPU placement are left out too: nodes of one run may sit on different GPUs, or some on CPUs.
    """
    training = dataclasses.replace(cfg.training, device="cpu", gpus=())
    shared = dataclasses.replace(
        cfg, training=training, transport=type(cfg.transport)(), metrics=type(cfg.metrics)(), security=type(cfg.security)()
    )
    return hashlib.blake2b(config_to_toml(shared).encode(), digest_size=8).digest()


@dataclass(frozen=True)
class NodePlan:
    """Everything a node needs, read from disk; building it is the only I/O before ``run()``."""

    node_id: NodeId
    cfg: RunConfig
    topology: Topology
    dataset: Dataset
    shard: np.ndarray  # indices of this node's training samples
    run_dir: Path | None
    resume: checkpoint.Checkpoint | None = None  # start from this state (gossip node --resume)
    join_round: int | None = None  # the round a resumed run agreed on (gossip launch --resume); None: ask the neighbours
    device: str = "cpu"  # where the model trains and mixes ("cpu", "cuda:1"): [training] device and gpus, resolved by the node


def plan_node(
    cfg: RunConfig, node_id: int, run_dir: str | Path | None = None, *, resume: bool = False, join_round: int | None = None
) -> NodePlan:
    """Load the topology and the data for ``node_id`` (the data cache in ``run_dir`` if there is one).

    With ``resume``, also the node's checkpoint in ``run_dir`` when there is one (none: a fresh start), and
    ``join_round``, the round the whole run resumes at (a checkpoint that far behind skips to it).
    """
    if resume and not run_dir:
        raise ConfigError("--resume needs --run-dir: the checkpoint is nodes/node-<i>.ckpt.npz there")
    if join_round is not None and not resume:
        raise ConfigError("--join-round needs --resume: it says where a resumed run continues")
    if join_round is not None and not 0 <= join_round <= cfg.training.rounds:
        raise ConfigError(f"--join-round {join_round} is outside the run's rounds 0..{cfg.training.rounds}")
    topology = topology_of(cfg)
    if cfg.membership.enabled:  # an open network: any id, and the data shard id mod nodes
        if not 0 <= node_id < MAX_NODES:
            raise ConfigError(f"node id {node_id} is outside 0..{MAX_NODES - 1}")
        part = node_id % topology.n
    elif not 0 <= node_id < topology.n:
        raise ConfigError(f"node id {node_id} is outside the topology's 0..{topology.n - 1}")
    else:
        part = node_id
    device = str(resolve_device(node_id, cfg.training.device, cfg.training.gpus))  # in the node's own process (gossip.learn.device)
    if device != "cpu":
        check_gpu_features(cfg)
    where = Path(run_dir) if run_dir else None
    if where is None or not (where / "data.npz").exists():  # no cache: the loader's data, a lazy dataset read for this node's part only
        dataset, shard = node_dataset(cfg, topology.n, part, where)
    else:
        dataset = load_npz(where / "data.npz")
        found = load_part(where / "shards.npz", shard_key(cfg, topology.n, dataset.num_train), part, dataset.num_train)
        # no launcher-written split for this config: compute it (the same pure function the launcher ran)
        shard = found if found is not None else split_training_set(cfg, topology.n, dataset.y_train)[part]
    saved = None
    if resume and run_dir:
        path = NodeFiles(run_dir, node_id).checkpoint
        saved = checkpoint.load(path) if path.exists() else None
    return NodePlan(NodeId(node_id), cfg, topology, dataset, shard, Path(run_dir) if run_dir else None, saved, join_round, device)


def message_limit(plan: NodePlan) -> int:
    """The largest frame a node of this run may receive: the model at float32 plus header slack."""
    if plan.cfg.transport.max_message_bytes:
        return plan.cfg.transport.max_message_bytes
    return build_flat_model(plan).layout.numel * 4 + HEADER_SLACK_BYTES


def build_flat_model(plan: NodePlan, device: str = "cpu") -> FlatModel:
    """The node's model, initialised from its seed, with its state in one flat vector on ``device``.

    Initialised on the CPU whatever the device, so a node's first model is the same bits on a GPU as on a CPU.
    """
    torch.manual_seed(init_seed(plan.cfg.run.seed, plan.node_id, shared=plan.cfg.model.init == "shared"))
    return flatten_(model_of(plan.cfg, plan.dataset), device=torch.device(device))
