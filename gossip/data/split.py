"""How a run's training set is split across its nodes: one pure function the launcher, the node and the simulation share."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np

from gossip.data.partition import partition, partition_key

if TYPE_CHECKING:
    from gossip.config import RunConfig

__all__ = ["shard_key", "split_training_set"]


def _split_args(cfg: RunConfig) -> dict[str, Any]:
    """How ``cfg`` splits the training set: the arguments :func:`gossip.data.partition` takes after the labels and N."""
    d = cfg.data
    return {
        "scheme": d.partition,
        "seed": cfg.run.seed,
        "alpha": d.alpha,
        "shards_per_node": d.shards_per_node,
        "min_size": d.min_size or None,
    }


def split_training_set(cfg: RunConfig, n_nodes: int, labels: np.ndarray) -> list[np.ndarray]:
    """Every node's sample indices under ``cfg`` (launcher, node and simulation split alike)."""
    return partition(labels, n_nodes, **_split_args(cfg))


def shard_key(cfg: RunConfig, n_nodes: int, num_train: int) -> str:
    """What the data split of a run depends on (see :func:`gossip.data.partition_key`)."""
    return partition_key(num_train, n_nodes, **_split_args(cfg))
